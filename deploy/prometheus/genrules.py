# Generates shortener.rules.yml: python3 genrules.py (run from deploy/prometheus/).
W = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
RB = "docs/runbooks/"
slos = [
  # name, objective, budget, expr template for error ratio over window {w}, runbook, what
  ("redirect_availability", "99.99%", 0.0001,
   'sum by (region) (rate(shortener_redirect_duration_seconds_count{{status=~"5.."}}[{w}]))\n  /\n  sum by (region) (rate(shortener_redirect_duration_seconds_count[{w}]))',
   "redirect-availability.md", "redirects answered with a 5xx"),
  ("redirect_latency", "99% within 50 ms", 0.01,
   '1 - (\n  sum by (region) (rate(shortener_redirect_duration_seconds_bucket{{le="0.05"}}[{w}]))\n  /\n  sum by (region) (rate(shortener_redirect_duration_seconds_count[{w}]))\n  )',
   "redirect-latency.md", "redirects slower than 50 ms"),
  ("create_availability", "99.9%", 0.001,
   'sum by (region) (rate(shortener_api_request_duration_seconds_count{{route="/api/v1/links",method="POST",status=~"5.."}}[{w}]))\n  /\n  sum by (region) (rate(shortener_api_request_duration_seconds_count{{route="/api/v1/links",method="POST"}}[{w}]))',
   "create-availability.md", "creates answered with a 5xx"),
  ("analytics_freshness", "99% of the time within 60 s", 0.01,
   '1 - avg_over_time(shortener:analytics_fresh:bool[{w}])',
   "analytics-freshness.md", "time the click counts were more than 60 s behind"),
]
alerts = [("BurnFast", "page", [(14.4, "5m", "1h"), (6, "30m", "6h")], "2m"),
          ("BurnSlow", "ticket", [(3, "2h", "1d"), (1, "6h", "3d")], "15m")]
def camel(s): return "".join(p.capitalize() for p in s.split("_"))
out = []
out.append("# Generated from the SLOs of issue 6 and the burn-rate windows of shared/NOTES.md\n"
           "# (SRE workbook: page at 14.4x over 5m and 1h and at 6x over 30m and 6h;\n"
           "# ticket at 3x over 2h and 1d and at 1x over 6h and 3d). Every alert names its runbook.\n"
           "# Checked by `promtool check rules` and `promtool test rules shortener.rules.test.yml` (deploy/deploy_test.go).\ngroups:")
out.append("""  - name: shortener-sli
    rules:
      # 1 while the clicks of an origin are counted here within 60 s, else 0.
      # Click batches are sent only when there are clicks, so an origin that
      # served no redirect over the last 10 minutes is not counted as stale.
      - record: shortener:analytics_fresh:bool
        expr: |
          1 - (
            max by (region, origin) (shortener_analytics_freshness_seconds > bool 60)
            * on (origin) group_left ()
            max by (origin) (label_replace(sum by (region) (rate(shortener_redirect_duration_seconds_count{status=~"30."}[10m])) > bool 0, "origin", "$1", "region", "(.*)"))
          )""")
for name, obj, budget, tmpl, rb, what in slos:
    out.append(f"  - name: shortener-slo-{name.replace('_','-')}\n    rules:")
    for w in W:
        expr = tmpl.format(w=w)
        out.append(f"      - record: shortener:{name}:error_ratio_rate{w}\n        expr: |\n          " + expr.replace("\n", "\n          "))
    for suffix, sev, pairs, fr in alerts:
        conds = []
        for factor, short, long in pairs:
            thr = round(factor * budget, 8)
            conds.append(f"(shortener:{name}:error_ratio_rate{short} > {thr} and shortener:{name}:error_ratio_rate{long} > {thr})")
        expr = "\n  or\n".join(conds)
        winds = " and ".join(f"{f}x over {s}/{l}" for f, s, l in pairs)
        out.append(f"""      - alert: Shortener{camel(name)}{suffix}
        expr: |
          {expr.replace(chr(10), chr(10)+'          ')}
        for: {fr}
        labels:
          severity: {sev}
          slo: {name}
        annotations:
          summary: "{{{{ $labels.region }}}}: {name.replace('_',' ')} SLO ({obj}) error budget burning ({winds})"
          description: "The share of {what} in {{{{ $labels.region }}}} burns the {obj} objective's budget at more than the {sev} rate: see the dashboard's SLO burn panel."
          runbook: {RB}{rb}""")
out.append("""  - name: shortener-alerts
    rules:
      - alert: ShortenerRegionDown
        expr: up{job="shortener"} == 0
        for: 30s
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }} does not answer /metrics"
          description: "Prometheus cannot scrape {{ $labels.instance }} ({{ $labels.region }}) for 30 s: the region's process is down or unreachable. The switch moves its clients when /readyz fails."
          runbook: docs/runbooks/region-down.md
      # A mirror neither live nor moving pages; one that is copying a
      # backlog (after its region or the origin was down) is on its way and
      # only wants a look if the catch-up lasts (ShortenerMirrorCatchUpLong).
      # A series without the copying gauge (an older binary) still pages.
      - alert: ShortenerMirrorInactive
        expr: shortener_mirror_active == 0 unless on (region, origin) shortener_mirror_copying == 1
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: the mirror of {{ $labels.origin }} is not live"
          description: "No event of {{ $labels.origin }} newer than 3 s has reached {{ $labels.region }} for a minute, and the mirror is not moving: links created in {{ $labels.origin }} do not resolve there, and the RPO of a failover of {{ $labels.origin }} to {{ $labels.region }} grows."
          runbook: docs/runbooks/mirror-inactive.md
      - alert: ShortenerMirrorCatchUpLong
        expr: shortener_mirror_active == 0 and on (region, origin) shortener_mirror_copying == 1
        for: 15m
        labels:
          severity: ticket
        annotations:
          summary: "{{ $labels.region }}: the mirror of {{ $labels.origin }} has been catching up for 15 minutes"
          description: "The mirror of {{ $labels.origin }} in {{ $labels.region }} is copying but has not reached live for 15 minutes ({{ $labels.origin }}'s newest events held there are older than 3 s): the backlog is large, or it copies slower than {{ $labels.origin }} writes."
          runbook: docs/runbooks/mirror-inactive.md
      - alert: ShortenerOriginBehindMirror
        expr: shortener_origin_behind == 1 or shortener_origin_diverged == 1
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.origin }} lost events that its mirror in {{ $labels.region }} holds"
          description: "{{ $labels.origin }}'s stream holds fewer events than its mirror in {{ $labels.region }}, or other events at the same sequences: it lost its stream and came back without repairing it. The mirror ignores {{ $labels.origin }}'s new events up to its own last sequence, so links created in {{ $labels.origin }} now do not reach {{ $labels.region }}."
          runbook: docs/runbooks/origin-behind-mirror.md
      - alert: ShortenerRPOBoundHigh
        expr: shortener_rpo_bound_seconds > 5 and on (region, origin) shortener_rpo_known == 1
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: RPO bound for {{ $labels.origin }} is {{ $value | humanizeDuration }}"
          description: "A failover of {{ $labels.origin }}'s clients to {{ $labels.region }} now could lose up to {{ $value | humanizeDuration }} of writes (threshold 5 s; heartbeats keep it near 1 s when healthy)."
          runbook: docs/runbooks/rpo-bound-high.md
      - alert: ShortenerCacheHitRateLow
        expr: |
          sum by (region) (rate(shortener_cache_lookups_total{result="hit"}[10m]))
            / sum by (region) (rate(shortener_cache_lookups_total[10m])) < 0.5
          and sum by (region) (rate(shortener_cache_lookups_total[10m])) > 1
        for: 15m
        labels:
          severity: ticket
        annotations:
          summary: "{{ $labels.region }}: redirect cache hit rate {{ $value | humanizePercentage }}"
          description: "Fewer than half of the redirect lookups in {{ $labels.region }} were served by the cache over 10 minutes: each miss is a Pebble read."
          runbook: docs/runbooks/cache-hit-rate-low.md
      - alert: ShortenerDiskUsageHigh
        expr: 1 - shortener_disk_free_bytes / shortener_disk_size_bytes > 0.8
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: data disk {{ $value | humanizePercentage }} full"
          description: "The file system of {{ $labels.region }}'s data directory (JetStream streams, mirrors, Pebble) is over 80% full. At 100% appends fail (creates answer 503) and the projection stops applying."
          runbook: docs/runbooks/disk-usage-high.md
      - alert: ShortenerHigh5xxRate
        expr: |
          sum by (region) (rate(shortener_http_errors_total{status=~"5.."}[5m]))
            / (sum by (region) (rate(shortener_redirect_duration_seconds_count[5m])) + sum by (region) (rate(shortener_api_request_duration_seconds_count[5m])))
            > 0.0001
        for: 5m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: {{ $value | humanizePercentage }} of requests answer 5xx"
          description: "More than 0.01% of all requests to {{ $labels.region }} (redirects and API) answered 5xx over 5 minutes."
          runbook: docs/runbooks/high-5xx-rate.md
      - alert: ShortenerCertificateExpiresSoon
        expr: shortener_certificate_remaining_seconds < 21 * 86400
        for: 10m
        labels:
          severity: ticket
        annotations:
          summary: "{{ $labels.region }}: certificate {{ $labels.cert }} expires in {{ $value | humanizeDuration }}"
          description: "The {{ $labels.cert }} certificate of {{ $labels.region }} expires in under 21 days. When the NATS certificate (cert=nats) expires, the region's routes, gateways and client connections fail their TLS handshake."
          runbook: docs/runbooks/certificate-expiry.md
      - alert: ShortenerCertificateExpiring
        expr: shortener_certificate_remaining_seconds < 7 * 86400
        for: 10m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: certificate {{ $labels.cert }} expires in {{ $value | humanizeDuration }}"
          description: "The {{ $labels.cert }} certificate of {{ $labels.region }} expires in under 7 days: rotate it now, one region at a time."
          runbook: docs/runbooks/certificate-expiry.md
      - alert: ShortenerEventsRejected
        expr: increase(shortener_events_rejected_total[10m]) > 0
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: events refused at the fold ({{ $labels.reason }})"
          description: "The projection of {{ $labels.region }} refused records for reason {{ $labels.reason }} in the last 10 minutes: events that do not belong where they were found (a forged or misplaced event, or regions given different --digits). They are skipped and never served; find who wrote them."
          runbook: docs/runbooks/events-rejected.md
      - alert: ShortenerStreamHalted
        expr: shortener_stream_halted == 1
        for: 1m
        labels:
          severity: page
        annotations:
          summary: "{{ $labels.region }}: {{ $labels.stream }} stopped at an event this binary does not understand"
          description: "The projection of {{ $labels.region }} stopped folding {{ $labels.stream }} at an event of a newer schema or an unknown type: it serves what it had, but nothing of that stream from there on reaches it. Upgrade the binary; the stream resumes at that event."
          runbook: docs/runbooks/stream-halted.md""")
open("shortener.rules.yml", "w").write("\n".join(out) + "\n")
