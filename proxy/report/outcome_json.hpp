#pragma once

#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string_view>

#include "proxy/tracker/outcome.hpp"

namespace finwave::proxy {

/// The outcome as the JSON object of the README's "Outcomes" section (`teardown_ms` and `t_ms` in
/// milliseconds with microsecond precision), for the control plane to embed in replies.
/// nlohmann::json keeps keys sorted; to_json_line() keeps the README's order.
nlohmann::json to_json(const Outcome& outcome);

/// The same object as one line without a trailing newline, `"event":"outcome"` first and the
/// other fields in the README's order.
std::string to_json_line(const Outcome& outcome);

/// The same line appended to `out`: what finwave writes once per connection, into one buffer
/// reused for every batch of outcomes.
void append_json_line(std::string& out, const Outcome& outcome);

/// The inverse of to_json() and to_json_line(): rebuilds an Outcome from its JSON object, for
/// tools that render outcomes received over the control socket or saved by `finwave --json`.
///
/// Required (the README's outcome fields): `event` == "outcome", `flow.client`, `flow.server`,
/// `closer`, `kind`, `result`, `fin_retransmits.client|server`, `final_acks.seen|dropped`, `rst`
/// (null or an object with `from` and `stage`), `teardown_ms`, `actions` and `timeline` (each
/// entry with `t_ms`, `from`, `role`, `retx`, `flags`, `seq`, `ack`, `len`, `verdict`). The
/// fields the tracker adds (`id`, `sides_known`, `ended_by`, `data_after_fin.bytes`, `dup_acks`,
/// `segments`, `actions_dropped`, `timeline_dropped`, `rst.answers_fin_retransmit`, and
/// `dup_ack`, `bogus`, `hold_ms`, `released`, `copies` in timeline entries) may be missing and
/// then take Outcome's defaults (`hold_ms` unknown; `released` is kept only with a `hold_ms`, as
/// to_json() writes it).
/// Unknown fields are ignored, so newer producers stay readable.
///
/// Throws std::invalid_argument naming the field and the problem, e.g.
/// `timeline[3].verdict: unknown value "dropped" (expected one of accept, drop, delay, duplicate,
/// reset)` or `flow.client: missing`.
Outcome outcome_from_json(const nlohmann::json& json);

/// The same from one JSON line; also throws std::invalid_argument when the line is not JSON.
Outcome outcome_from_json_line(std::string_view json_line);

}  // namespace finwave::proxy
