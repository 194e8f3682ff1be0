#include "proxy/report/outcome_json.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "proxy/report/outcome_text.hpp"
#include "proxy/tracker/outcome.hpp"
#include "segment_script.hpp"

namespace finwave::proxy::test {
namespace {

using Json = nlohmann::json;

// A teardown with something in every field: lost first final ACK, fin2 retransmitted, half-close
// data, then a clean end.
Outcome sample_outcome() {
  Harness h;
  h.play(wire_v6(),
         handshake() +
             std::vector<Row>{
                 {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                 {kServer, ".", 9001, 2002, 0, Role::kAck1},
                 {kServer, "P.", 9001, 2002, 100, Role::kDataAfterFin},
                 {kServer, "F.", 9101, 2002, 0, Role::kFin2},
                 {kClient, ".", 2002, 9102, 0, Role::kFinalAck, false, Verdict::kDrop,
                  "lose-final-ack"},
                 {kServer, "F.", 9101, 2002, 0, Role::kFin2, true, Verdict::kAccept, {}, 200'000},
                 {kClient, ".", 2002, 9102, 0, Role::kFinalAck},
             });
  h.wait(1'000'000);
  REQUIRE(h.outcomes.size() == 1);
  return h.outcomes.front();
}

Outcome reset_outcome() {
  Harness h;
  h.play(wire_v4(), handshake() + std::vector<Row>{
                                      {kClient, "F.", 2001, 9001, 0, Role::kFin1},
                                      {kServer, "R", 9001, 0, 0, Role::kRst},
                                  });
  h.wait(1'000'000);
  REQUIRE(h.outcomes.size() == 1);
  return h.outcomes.front();
}

bool is_one_of(const Json& value, const std::set<std::string>& allowed) {
  return value.is_string() && allowed.count(value.get<std::string>()) == 1;
}

// Checks every field the README lists (and the ones the tracker adds) with its JSON type.
void check_schema(const Json& j) {
  REQUIRE(j.is_object());
  CHECK(j.at("event") == "outcome");
  CHECK(j.at("id").is_number_unsigned());
  CHECK(j.at("flow").at("client").is_string());
  CHECK(j.at("flow").at("server").is_string());
  CHECK(j.at("sides_known").is_boolean());
  CHECK(is_one_of(j.at("closer"), {"client", "server", "both", "none"}));
  CHECK(is_one_of(j.at("kind"), {"four_way", "three_way", "simultaneous", "reset", "incomplete"}));
  CHECK(is_one_of(j.at("result"), {"clean", "reset", "timeout"}));
  CHECK(is_one_of(j.at("ended_by"), {"settle", "rst", "linger", "new_syn", "shutdown"}));
  CHECK(j.at("fin_retransmits").at("client").is_number_unsigned());
  CHECK(j.at("fin_retransmits").at("server").is_number_unsigned());
  CHECK(j.at("final_acks").at("seen").is_number_unsigned());
  CHECK(j.at("final_acks").at("dropped").is_number_unsigned());
  const Json& rst = j.at("rst");
  CHECK((rst.is_null() || rst.is_object()));
  if (rst.is_object()) {
    CHECK(is_one_of(rst.at("from"), {"client", "server"}));
    CHECK(is_one_of(rst.at("stage"),
                    {"before_fin", "fin_wait", "closing", "last_ack", "time_wait", "after_close"}));
    CHECK(rst.at("answers_fin_retransmit").is_boolean());
  }
  CHECK(j.at("teardown_ms").is_number());
  CHECK(j.at("data_after_fin").at("bytes").is_number_unsigned());
  CHECK(j.at("dup_acks").is_number_unsigned());
  CHECK(j.at("segments").is_number_unsigned());
  CHECK(j.at("timeline_dropped").is_number_unsigned());
  CHECK(j.at("actions_dropped").is_number_unsigned());
  REQUIRE(j.at("actions").is_array());
  for (const Json& action : j.at("actions")) {
    CHECK(action.at("rule").is_string());
    CHECK(action.at("role").is_string());
    CHECK(is_one_of(action.at("action"), {"accept", "drop", "delay", "duplicate", "reset"}));
    CHECK(action.at("count").is_number_unsigned());
  }
  REQUIRE(j.at("timeline").is_array());
  for (const Json& entry : j.at("timeline")) {
    CHECK(entry.at("t_ms").is_number());
    CHECK(is_one_of(entry.at("from"), {"client", "server"}));
    CHECK(is_one_of(entry.at("role"), {"syn", "syn_ack", "fin1", "ack1", "fin2", "final_ack",
                                       "data_after_fin", "rst", "ack"}));
    CHECK(entry.at("retx").is_boolean());
    CHECK(entry.at("dup_ack").is_boolean());
    CHECK(entry.at("bogus").is_boolean());
    CHECK(entry.at("flags").is_string());
    CHECK(entry.at("seq").is_number_unsigned());
    CHECK(entry.at("ack").is_number_unsigned());
    CHECK(entry.at("len").is_number_unsigned());
    CHECK(is_one_of(entry.at("verdict"), {"accept", "drop", "delay", "duplicate", "reset"}));
  }
}

}  // namespace

TEST_SUITE("proxy") {
  TEST_CASE("outcome: JSON line has every README field with the right type") {
    for (const Outcome& o : {sample_outcome(), reset_outcome()}) {
      const std::string line = to_json_line(o);
      CHECK(line.find('\n') == std::string::npos);
      CHECK(line.rfind("{\"event\":\"outcome\",", 0) == 0);
      check_schema(Json::parse(line));
      check_schema(to_json(o));
    }
  }

  TEST_CASE("outcome: the JSON line holds the same JSON as to_json") {
    Outcome odd = sample_outcome();
    // Text that needs escaping, in the one free-text field (rule names).
    for (ActionRecord& a : odd.actions) a.rule = "quote\" back\\slash \t caf\xC3\xA9";
    odd.teardown_us = 123456789;
    for (const Outcome& o : {sample_outcome(), reset_outcome(), odd}) {
      CHECK(Json::parse(to_json_line(o)) == to_json(o));
    }
  }

  TEST_CASE("outcome: JSON values match the teardown") {
    const Json j = Json::parse(to_json_line(sample_outcome()));
    CHECK(j["flow"]["client"] == "[2001:db8:1::2]:40000");
    CHECK(j["flow"]["server"] == "[2001:db8:2::2]:5000");
    CHECK(j["sides_known"] == true);
    CHECK(j["closer"] == "client");
    CHECK(j["kind"] == "four_way");
    CHECK(j["result"] == "clean");
    CHECK(j["ended_by"] == "settle");
    CHECK(j["fin_retransmits"]["client"] == 0);
    CHECK(j["fin_retransmits"]["server"] == 1);
    CHECK(j["final_acks"]["seen"] == 2);
    CHECK(j["final_acks"]["dropped"] == 1);
    CHECK(j["rst"].is_null());
    CHECK(j["teardown_ms"].get<double>() == doctest::Approx(205.0));
    CHECK(j["data_after_fin"]["bytes"] == 100);
    CHECK(j["dup_acks"] == 1);
    CHECK(j["actions"] ==
          Json::parse(R"([{"rule":"lose-final-ack","role":"final_ack","action":"drop",)"
                      R"("count":1}])"));
    const Json& timeline = j["timeline"];
    REQUIRE(timeline.size() == 9);
    // The handshake comes before the first FIN: negative times.
    CHECK(timeline[0]["t_ms"].get<double>() == doctest::Approx(-2.0));
    CHECK(timeline[0]["flags"] == "S");
    CHECK(timeline[0]["seq"] == 1000);
    CHECK(timeline[1]["flags"] == "S.");
    CHECK(timeline[1]["role"] == "syn_ack");
    CHECK(timeline[2]["t_ms"].get<double>() == 0.0);
    CHECK(timeline[2]["flags"] == "F.");
    CHECK(timeline[4]["len"] == 100);
    CHECK(timeline[4]["role"] == "data_after_fin");
    CHECK(timeline[6]["verdict"] == "drop");
    CHECK(timeline[6]["role"] == "final_ack");
    CHECK(timeline[7]["retx"] == true);
    CHECK(timeline[7]["from"] == "server");
    CHECK(timeline[8]["dup_ack"] == true);
    CHECK(timeline[8]["flags"] == ".");
    CHECK(timeline[8]["ack"] == 9102);
  }

  TEST_CASE("outcome: JSON line keeps the README order") {
    const std::string line = to_json_line(sample_outcome());
    const std::vector<std::string> order = {"\"event\"",      "\"flow\"",    "\"closer\"",
                                            "\"kind\"",       "\"result\"",  "\"fin_retransmits\"",
                                            "\"final_acks\"", "\"rst\"",     "\"teardown_ms\"",
                                            "\"actions\"",    "\"timeline\""};
    std::size_t at = 0;
    for (const std::string& key : order) {
      const std::size_t found = line.find(key, at);
      INFO(key);
      REQUIRE(found != std::string::npos);
      at = found;
    }
  }

  TEST_CASE("outcome: the RST object names sender and stage") {
    const Json j = Json::parse(to_json_line(reset_outcome()));
    CHECK(j["result"] == "reset");
    CHECK(j["kind"] == "reset");
    CHECK(j["rst"] ==
          Json::parse(R"({"from":"server","stage":"fin_wait","answers_fin_retransmit":false})"));
    CHECK(j["teardown_ms"].get<double>() == doctest::Approx(1.0));
  }

  TEST_CASE("outcome: a hand-built outcome serialises without a tracker") {
    Outcome o;
    o.id = 7;
    o.client.family = 4;
    o.client.address = ipv4(10, 0, 0, 1).bytes;
    o.client.port = 1234;
    o.server.family = 4;
    o.server.address = ipv4(10, 0, 0, 2).bytes;
    o.server.port = 80;
    o.teardown_us = 312'400;
    o.rst = RstInfo{Side::kClient, Stage::kAfterClose, true};
    o.actions.push_back({"weird \xff name", Role::kFinalAck, Verdict::kDrop, 2});
    const Json j = Json::parse(to_json_line(o));
    check_schema(j);
    CHECK(j["teardown_ms"].get<double>() == doctest::Approx(312.4));
    CHECK(j["timeline"].empty());
  }

  TEST_CASE("outcome: text line reads like the teardown") {
    const std::string text = to_text_line(sample_outcome());
    CHECK(text.find('\n') == std::string::npos);
    CHECK(text.rfind("client [2001:db8:1::2]:40000 \u2192 server [2001:db8:2::2]:5000  four_way  "
                     "clean  closer=client  fin_retx c0 s1  final_ack 2 seen / 1 dropped",
                     0) == 0);
    CHECK(text.find("205.0 ms") != std::string::npos);
    CHECK(text.find("data_after_fin 100 B") != std::string::npos);
    CHECK(text.find("[lose-final-ack drop final_ack \u00d71]") != std::string::npos);

    const std::string reset_text = to_text_line(reset_outcome());
    CHECK(reset_text.find("rst from server in fin_wait") != std::string::npos);
  }

}  // TEST_SUITE
}  // namespace finwave::proxy::test
