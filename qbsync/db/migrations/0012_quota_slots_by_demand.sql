-- The in-flight slots of a realm shared by demand (issue 15's bench-quota: with an equal
-- share, pushers holding slots they could not use kept the first sync at 4 of 10 in
-- flight while the window had room). Each holder says how many requests it could have in
-- flight (`wanted_slots`: those in flight plus those waiting); it gets at least its equal
-- share of what it wants, and any slots the others do not want.
ALTER TABLE qbo_quota_holders ADD COLUMN wanted_slots integer NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION qbo_quota_take(
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
    share integer;
    others_claim integer;
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
    -- Slots: never more than the others leave free; at least an equal share of what this
    -- holder wants, and beyond it whatever the others, each up to its equal share, do not
    -- want (so a holder short of slots gets them back at the next take of a larger one).
    share := ceil(p_max_in_flight::numeric / (competitors + 1))::integer;
    SELECT coalesce(sum(least(h.wanted_slots, share)), 0) INTO others_claim
      FROM qbo_quota_holders h
     WHERE h.realm_id = p_realm AND h.holder <> p_holder AND h.wanted > 0
       AND h.refreshed_at > now_ - ttl_;
    slots := greatest(0, least(p_want_slots, p_max_in_flight - others_slots,
                               greatest(share, p_max_in_flight - others_claim)));
    INSERT INTO qbo_quota_holders AS h
         VALUES (p_realm, p_holder, p_in_flight_calls + granted, greatest(slots, p_in_flight),
                 p_want_calls, p_want_calls - granted, p_priority, now_, p_want_slots)
    ON CONFLICT (realm_id, holder) DO UPDATE
       SET open_calls = EXCLUDED.open_calls, slots = EXCLUDED.slots, wanted = EXCLUDED.wanted,
           short = EXCLUDED.short, priority = EXCLUDED.priority, refreshed_at = now_,
           wanted_slots = EXCLUDED.wanted_slots;
    -- When room is short, the first moment a finished call leaves the window.
    SELECT extract(epoch FROM min(spent_at) + window_ - now_) INTO retry_in
      FROM qbo_quota_spent WHERE realm_id = p_realm;
END
$$;
