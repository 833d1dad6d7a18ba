-- One QuickBooks quota per realm, shared by every process of the deployment
-- (qbsync/db/quota.py explains the bookkeeping; qbsync/quickbooks/limiter.py uses it).

-- What each process holds of a realm's quota right now: calls granted and not yet reported
-- finished (unstarted or in flight), and how many requests it may have in flight.
CREATE TABLE qbo_quota_holders (
    realm_id text NOT NULL,
    holder text NOT NULL,
    open_calls integer NOT NULL,
    slots integer NOT NULL,
    wanted integer NOT NULL,       -- calls its waiters wanted at the last take (all of them)
    short integer NOT NULL,        -- of those, how many it did not get
    priority smallint NOT NULL,    -- its most urgent waiter's (0 = a person waits)
    refreshed_at timestamptz NOT NULL,
    PRIMARY KEY (realm_id, holder)
);

-- Finished calls, counted in the realm's window until `window` after they were reported.
CREATE TABLE qbo_quota_spent (
    realm_id text NOT NULL,
    spent_at timestamptz NOT NULL,
    calls integer NOT NULL
);
CREATE INDEX qbo_quota_spent_by_realm ON qbo_quota_spent (realm_id, spent_at);

-- QuickBooks' metered reads (CorePlus calls) per month, for `qbsync usage`.
CREATE TABLE qbo_reads_by_month (
    realm_id text NOT NULL,
    month date NOT NULL,
    reads bigint NOT NULL,
    PRIMARY KEY (realm_id, month)
);

-- One round trip per grant: report what finished (and the metered reads among it), give back what was not used, take up to
-- p_chunk calls and a share of the in-flight slots. Serialised per realm by an advisory
-- lock held for the transaction of the call.
CREATE FUNCTION qbo_quota_take(
    p_realm text, p_holder text, p_finished integer, p_in_flight_calls integer,
    p_in_flight integer, p_want_calls integer, p_want_slots integer, p_priority smallint,
    p_limit integer, p_window double precision, p_max_in_flight integer, p_chunk integer,
    p_ttl double precision, p_reads integer,
    p_finished_calls integer[], p_finished_agos double precision[],
    OUT granted integer, OUT slots integer, OUT retry_in double precision)
LANGUAGE plpgsql AS $$
DECLARE
    now_ timestamptz := clock_timestamp();
    window_ interval := make_interval(secs => p_window);
    ttl_ interval := make_interval(secs => p_ttl);
    spent_ integer;
    others_calls integer;
    others_slots integer;
    competitors integer;
    more_urgent boolean;
    room integer;
BEGIN
    PERFORM pg_advisory_xact_lock(hashtextextended('qbo-quota:' || p_realm, 0));
    IF p_finished > 0 THEN
        -- Groups of finished calls, each counted from when the last of it finished (told
        -- as seconds ago, so the clocks need not agree): never before QuickBooks saw them.
        INSERT INTO qbo_quota_spent
        SELECT p_realm, now_ - make_interval(secs => greatest(g.ago, 0)), g.calls
          FROM unnest(p_finished_calls, p_finished_agos) AS g(calls, ago);
    END IF;
    IF p_reads > 0 THEN
        INSERT INTO qbo_reads_by_month VALUES (p_realm, date_trunc('month', now_)::date, p_reads)
        ON CONFLICT (realm_id, month) DO UPDATE
           SET reads = qbo_reads_by_month.reads + EXCLUDED.reads;
    END IF;
    DELETE FROM qbo_quota_spent WHERE realm_id = p_realm AND spent_at <= now_ - window_;
    -- A holder gone silent (crashed) keeps its calls counted for a window after its lease.
    DELETE FROM qbo_quota_holders
     WHERE realm_id = p_realm AND refreshed_at <= now_ - ttl_ - window_;
    SELECT coalesce(sum(calls), 0) INTO spent_ FROM qbo_quota_spent WHERE realm_id = p_realm;
    SELECT coalesce(sum(h.open_calls), 0),
           coalesce(sum(h.slots) FILTER (WHERE h.refreshed_at > now_ - ttl_), 0),
           count(*) FILTER (WHERE h.wanted > 0 AND h.refreshed_at > now_ - ttl_),
           coalesce(bool_or(h.short > 0 AND h.priority < p_priority
                            AND h.refreshed_at > now_ - ttl_), false)
      INTO others_calls, others_slots, competitors, more_urgent
      FROM qbo_quota_holders h WHERE h.realm_id = p_realm AND h.holder <> p_holder;
    room := p_limit - spent_ - others_calls - p_in_flight_calls;
    IF more_urgent THEN
        granted := 0;  -- work a person waits for goes first
    ELSE
        granted := greatest(0, least(p_want_calls, p_chunk, room));
    END IF;
    slots := greatest(0, least(p_want_slots, p_max_in_flight - others_slots,
                               ceil(p_max_in_flight::numeric / (competitors + 1))::integer));
    INSERT INTO qbo_quota_holders AS h
         VALUES (p_realm, p_holder, p_in_flight_calls + granted, greatest(slots, p_in_flight),
                 p_want_calls, p_want_calls - granted, p_priority, now_)
    ON CONFLICT (realm_id, holder) DO UPDATE
       SET open_calls = EXCLUDED.open_calls, slots = EXCLUDED.slots, wanted = EXCLUDED.wanted,
           short = EXCLUDED.short, priority = EXCLUDED.priority, refreshed_at = now_;
    -- When room is short, the first moment a finished call leaves the window.
    SELECT extract(epoch FROM min(spent_at) + window_ - now_) INTO retry_in
      FROM qbo_quota_spent WHERE realm_id = p_realm;
END
$$;
