// Tests of proxy/dataplane/queue_classes.cpp: which classes of segment the capture must queue
// for a set of rules.

#include "proxy/dataplane/queue_classes.hpp"

#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "rules/rule_loader.hpp"

namespace finwave::proxy {
namespace {

nf::SegmentClasses classes_for(const std::string& toml) {
  return queue_classes(rules::parse_rules(toml, "test"));
}

std::string rule(const std::string& name, const std::string& role, bool enabled = true) {
  return "[[rule]]\nname = \"" + name + "\"\nrole = \"" + role +
         "\"\naction = \"drop\"\nenabled = " + (enabled ? "true" : "false") + "\n";
}

}  // namespace

TEST_SUITE("dataplane") {
  TEST_CASE("queue_classes: each role's class is the one its flags fall in") {
    using nf::SegmentClass;
    using rules::Role;
    const std::pair<Role, SegmentClass> expected[] = {
        {Role::kSyn, SegmentClass::kSyn},      {Role::kSynAck, SegmentClass::kSynAck},
        {Role::kFin1, SegmentClass::kFin},     {Role::kFin2, SegmentClass::kFin},
        {Role::kRst, SegmentClass::kRst},      {Role::kAck1, SegmentClass::kAck},
        {Role::kFinalAck, SegmentClass::kAck}, {Role::kDataAfterFin, SegmentClass::kAck},
        {Role::kAck, SegmentClass::kAck},
    };
    static_assert(std::size(expected) == rules::kSegmentRoleCount);
    for (const auto& pair : expected) {
      CAPTURE(rules::to_string(pair.first));
      CHECK(nf::to_string(segment_class_of(pair.first)) == nf::to_string(pair.second));
    }
  }

  TEST_CASE("queue_classes: the enabled rules' classes are queued, nothing without one") {
    CHECK(classes_for("").empty());
    CHECK(classes_for(rule("a", "fin1", false)).empty());
    CHECK(classes_for(rule("a", "final_ack")).names() == "ack");
    CHECK(classes_for(rule("a", "fin2") + rule("b", "rst") + rule("c", "syn_ack")).names() ==
          "rst, syn_ack, fin");
    CHECK(classes_for(rule("a", "syn") + rule("b", "any", false)).names() == "syn");
    CHECK(classes_for(rule("a", "ack1") + rule("b", "any")).full());
    // A rule without a role matches every role.
    CHECK(classes_for("[[rule]]\nname = \"all\"\naction = \"pass\"\n").full());
  }

  TEST_CASE("queue_plan: ports narrow a class to the end the sender says") {
    using End = nf::PortMatch::End;
    const auto narrowing = [](const std::string& keys) {
      const rules::RuleSet set =
          rules::parse_rules("[[rule]]\nname = \"r\"\naction = \"drop\"\n" + keys, "test");
      return port_narrowing(set.rules.front());
    };
    CHECK_FALSE(narrowing("role = \"final_ack\"").has_value());
    CHECK_FALSE(narrowing("from = \"client\"").has_value());  // a sender alone: whole class
    CHECK(narrowing("ports = [80]") == nf::PortMatch{End::kEither, {80}});
    CHECK(narrowing("from = \"client\"\nserver_ports = [5000, 5001]") ==
          nf::PortMatch{End::kDestination, {5000, 5001}});
    CHECK(narrowing("from = \"server\"\nserver_ports = [5000]") ==
          nf::PortMatch{End::kSource, {5000}});
    CHECK(narrowing("from = \"client\"\nclient_ports = [40000]") ==
          nf::PortMatch{End::kSource, {40000}});
    CHECK(narrowing("from = \"server\"\nclient_ports = [40000]") ==
          nf::PortMatch{End::kDestination, {40000}});
    // The closers are not tied to an end; neither is a rule without `from`.
    CHECK(narrowing("from = \"active\"\nserver_ports = [5000]") ==
          nf::PortMatch{End::kEither, {5000}});
    CHECK(narrowing("client_ports = [40000]") == nf::PortMatch{End::kEither, {40000}});
    // Several keys: the one tied to an end wins (each alone is a superset of the rule's match).
    CHECK(narrowing("from = \"client\"\nports = [80]\nserver_ports = [5000]") ==
          nf::PortMatch{End::kDestination, {5000}});
    CHECK(narrowing("ports = [80]\nserver_ports = [5000]") == nf::PortMatch{End::kEither, {80}});
  }

  TEST_CASE("queue_plan: a class is narrowed only while every rule on it has ports") {
    using End = nf::PortMatch::End;
    const auto ack = static_cast<std::size_t>(nf::SegmentClass::kAck);
    const auto plan = [](const std::string& toml) {
      return queue_plan(rules::parse_rules(toml, "test"));
    };
    const std::string to_5000 =
        "[[rule]]\nname = \"a\"\nrole = \"final_ack\"\nfrom = \"client\"\n"
        "server_ports = [5000]\naction = \"drop\"\n";
    QueuePlan one = plan(to_5000);
    CHECK(one.classes.names() == "ack");
    CHECK(one.only[ack] == std::vector<nf::PortMatch>{{End::kDestination, {5000}}});
    CHECK(one.logs_something());
    // A second rule on the same class with the same match adds nothing; another adds its own.
    const std::string same = to_5000 +
                             "[[rule]]\nname = \"b\"\nrole = \"ack1\"\n"
                             "from = \"client\"\nserver_ports = [5000]\naction = \"drop\"\n";
    CHECK(plan(same).only[ack].size() == 1);
    const std::string other = to_5000 +
                              "[[rule]]\nname = \"b\"\nrole = \"ack\"\n"
                              "ports = [7000]\naction = \"drop\"\n";
    CHECK(plan(other).only[ack] ==
          std::vector<nf::PortMatch>{{End::kDestination, {5000}}, {End::kEither, {7000}}});
    // One rule without ports on the class: queued whole.
    QueuePlan whole = plan(to_5000 + rule("b", "data_after_fin"));
    CHECK(whole.classes.names() == "ack");
    CHECK(whole.only[ack].empty());
    // Disabled rules narrow nothing.
    CHECK(plan(to_5000 + rule("b", "ack", false)).only[ack].size() == 1);
    // `any` with ports: every class, each narrowed, and something still logged.
    QueuePlan any = plan("[[rule]]\nname = \"a\"\nports = [9000]\naction = \"pass\"\n");
    CHECK(any.classes.full());
    for (const auto& only : any.only) {
      CHECK(only == std::vector<nf::PortMatch>{{End::kEither, {9000}}});
    }
    CHECK(any.logs_something());
    CHECK_FALSE(plan(rule("a", "any")).logs_something());
    CHECK(plan("").logs_something());
    CHECK(plan(to_5000) == plan(to_5000));
    CHECK_FALSE(plan(to_5000) == plan(rule("a", "final_ack")));
  }
}

}  // namespace finwave::proxy
