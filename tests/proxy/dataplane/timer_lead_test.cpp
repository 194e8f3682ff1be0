// Tests of TimerLead (proxy/timer_lead.cpp): how early the delay timer is armed.

#include "proxy/dataplane/timer_lead.hpp"

#include <doctest/doctest.h>

#include <cstdint>

using finwave::proxy::TimerLead;

TEST_SUITE("timer_lead") {
  TEST_CASE("timer_lead: no lead before the first wake-up") {
    const TimerLead lead;
    CHECK(lead.lead_us() == 0);
    CHECK(lead.samples() == 0);
  }

  TEST_CASE("timer_lead: the lead is the 90th percentile of the wake-up latencies") {
    TimerLead lead;
    lead.record(100);
    CHECK(lead.lead_us() == 100);
    // Ten wake-ups, 10..100 µs: nine in ten came within 90 µs.
    TimerLead ten;
    for (std::uint64_t late = 100; late >= 10; late -= 10) ten.record(late);
    CHECK(ten.samples() == 10);
    CHECK(ten.lead_us() == 90);
  }

  TEST_CASE("timer_lead: one stalled wake-up does not move the lead") {
    TimerLead lead;
    for (int i = 0; i < 20; ++i) lead.record(120);
    lead.record(900);
    CHECK(lead.lead_us() == 120);
  }

  TEST_CASE("timer_lead: a tenth of the wake-ups running late moves the lead") {
    TimerLead lead;
    for (int i = 0; i < 27; ++i) lead.record(60);
    for (int i = 0; i < 4; ++i) lead.record(400);
    CHECK(lead.lead_us() == 400);
  }

  TEST_CASE("timer_lead: old wake-ups leave the window") {
    TimerLead lead;
    for (std::size_t i = 0; i < TimerLead::kWindow; ++i) lead.record(500);
    CHECK(lead.lead_us() == 500);
    for (std::size_t i = 0; i < TimerLead::kWindow; ++i) lead.record(80);
    CHECK(lead.lead_us() == 80);
    CHECK(lead.samples() == TimerLead::kWindow);
  }

  TEST_CASE("timer_lead: the lead is capped") {
    TimerLead lead;
    for (int i = 0; i < 5; ++i) lead.record(50'000);
    CHECK(lead.lead_us() == TimerLead::kMaxLeadUs);
  }
}
