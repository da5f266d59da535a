"""The monitors (`monitors/`) wired into the review store: feeds, batches, alerts, webhook outbox.

- `feeds`: register a feed (reference upload -> contract + reference profile), edit its contract, post a
  batch (profiled once, scored against the reference profile, alerts reconciled, webhooks queued).
- `alerts`: `monitors.alerts.AlertStore` on the `feed_alert` table; list, acknowledge, resolve.
- `outbox`: the `monitors.webhooks` outbox on the `webhook_delivery` table; delivery and its retries.
- `files`: where the bulky per-feed files live under CROSSWALK_HOME.

Like `service/crud*.py`: functions of a session and plain arguments, every write through `audit.record`,
the caller owns the transaction.
"""
