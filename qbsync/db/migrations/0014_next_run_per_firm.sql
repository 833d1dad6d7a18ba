-- A Sync Now pressed while the firm's run is under way opens the next run (which starts
-- when that one ends) instead of joining a run that may have read QuickBooks before the
-- press: a firm has at most one run that has not started, beside the one under way.
DROP INDEX IF EXISTS one_open_run_per_firm;
CREATE UNIQUE INDEX one_waiting_run_per_firm ON sync_runs (firm_id) WHERE status = 'pending';
