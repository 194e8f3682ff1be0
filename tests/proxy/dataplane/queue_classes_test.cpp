// Tests of proxy/dataplane/queue_classes.cpp: which classes of segment the capture must queue
// for a set of rules.

#include "proxy/dataplane/queue_classes.hpp"

#include <doctest/doctest.h>

#include <string>

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
}

}  // namespace finwave::proxy
