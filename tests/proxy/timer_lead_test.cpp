// Tests of TimerLead (proxy/timer_lead.cpp): how early the delay timer is armed.

#include "proxy/timer_lead.hpp"

#include <doctest/doctest.h>

using finwave::proxy::TimerLead;

TEST_SUITE("timer_lead") {
  TEST_CASE("timer_lead: no lead before the first wake-up") {
    const TimerLead lead;
    CHECK(lead.lead_us() == 0);
    CHECK(lead.samples() == 0);
  }

  TEST_CASE("timer_lead: the lead is the median wake-up latency") {
    TimerLead lead;
    lead.record(100);
    CHECK(lead.lead_us() == 100);
    lead.record(300);
    lead.record(200);
    CHECK(lead.lead_us() == 200);
  }

  TEST_CASE("timer_lead: one stalled wake-up does not move the lead") {
    TimerLead lead;
    for (int i = 0; i < 20; ++i) lead.record(120);
    lead.record(900);
    CHECK(lead.lead_us() == 120);
  }

  TEST_CASE("timer_lead: old wake-ups leave the window") {
    TimerLead lead;
    for (std::size_t i = 0; i < TimerLead::kWindow; ++i) lead.record(500);
    CHECK(lead.lead_us() == 500);
    for (std::size_t i = 0; i < TimerLead::kWindow / 2 + 1; ++i) lead.record(80);
    CHECK(lead.lead_us() == 80);
    CHECK(lead.samples() == TimerLead::kWindow);
  }

  TEST_CASE("timer_lead: the lead is capped") {
    TimerLead lead;
    for (int i = 0; i < 5; ++i) lead.record(50'000);
    CHECK(lead.lead_us() == TimerLead::kMaxLeadUs);
  }
}
