# Turns results/scenarios.json into the Markdown table (run.sh: jq -r -f table.jq).
def cell: tostring | gsub("\\|"; "\\|") | gsub("\n"; " ");
def fw: if . == null then "no outcome" else
  "\(.closer) \(.kind) **\(.result)**; FIN retx c\(.fin_retransmits.client)/s\(.fin_retransmits.server);"
  + " final ACKs \(.final_acks.seen) seen/\(.final_acks.dropped) dropped"
  + (if .rst then "; RST from \(.rst.from) @\(.rst.stage)"
       + (if .rst.answers_fin_retransmit then " (answers a FIN retransmission)" else "" end)
     else "" end)
  + "; \(.teardown_ms) ms"
  + (if (.actions | length) > 0 then "; " + (.actions | join(", ")) else "" end) end;
def wire: if . == null then "–" else
  "\(.closer) \(.kind) **\(.result)**; FINs c\(.fins.client)/s\(.fins.server); RSTs c\(.rsts.client)/s\(.rsts.server)"
  + (if .rst then " (first from \(.rst.from) @\(.rst.stage))" else "" end)
  + "; final ACKs \(.final_acks)"
  + (if (.data_after_fin // 0) > 0 then "; \(.data_after_fin) B after fin1" else "" end) end;
def settings:
  [ (if .sysctl_client != "" then "client: `\(.sysctl_client)`" else empty end),
    (if .sysctl_server != "" then "server: `\(.sysctl_server)`" else empty end),
    (if .rules != "" then "rules: `\(.rules)`" else "no rules" end),
    "client `\(.client_script)`", "server `\(.server_script)`",
    .family + (if .connections > 1 then ", \(.connections) connections" else "" end) ] | join("<br>");
def measured:
  . as $m
  | [ (if $m.server_fins.n > 0 then "server FINs at \($m.server_fins.t_ms | map(tostring) | join(", ")) ms" else empty end),
      (if $m.client_fins.n > 1 then "client FINs at \($m.client_fins.t_ms | map(tostring) | join(", ")) ms" else empty end),
      ($m | to_entries[] | select(.key != "server_fins" and .key != "client_fins")
       | "\(.key): \(.value | if type == "string" then . else tojson end)") ] | join("<br>");
"Kernel `\(.kernel)`, \(.date), set: \(.set).",
"",
"| scenario | settings | finwave reported | tcpdump saw (sent by each side; then what was delivered) | measured | pass |",
"|---|---|---|---|---|---|",
(.scenarios[] |
  "| **\(.name)**<br>\(.title | cell) | \(.settings // {} | if .family then settings else "" end | cell) | "
  + "\(.finwave | fw | cell) | \(.wire | wire | cell)\(.delivered | if . == null then "" else "<br>delivered: FINs c\(.fins.client)/s\(.fins.server), RSTs c\(.rsts.client)/s\(.rsts.server), final ACKs \(.final_acks)" end | cell) | \(.measured // {} | measured | cell) | "
  + (if .pass then "PASS" else "**FAIL**: " + (.problems | join("; ") | .[0:300] | cell) end) + " |")
