-- Several gridmap instances on one database (docs/deploy.md): what each must hear from the others.
--
-- 1. The live feed is read from the report history by every instance, in one order all of them
--    agree on, so that a client can resume on any instance with the history id it saw last
--    (`Last-Event-ID`). History ids alone are not that order: ids are drawn before commit, so a
--    later id can commit first and a reader that moved past it would never see the earlier one.
--    The writing transaction's id is: a reader delivers only rows whose transaction is older than
--    every transaction of the database still running (server/src/reports/feed.rs), ordered by
--    (xact, id) — nothing can appear behind that point any more. Rows written before this migration keep a null xact
--    (they are history, never live events). The default is set after the column is added, so
--    existing rows are not rewritten; an old-version server's inserts get it too (additive).
alter table report_event add column xact xid8;
alter table report_event alter column xact set default pg_current_xact_id();
create index report_event_xact_idx on report_event (xact, id);

-- 2. Logins end on every instance at once: each instance caches live tokens for a few seconds
--    and drops its cache when told that a token, an account's role/password/disabled flag or a
--    grid assignment changed — by any instance, `gridmap user add`, or plain SQL. Statement
--    triggers: one notification per statement, whatever the number of rows. Logins (inserts
--    into session_token) are not announced: a new token is not in anyone's cache. The function
--    and its triggers live in migrations/functions/logins.sql (its README: numbered migrations
--    from 0015 on define no function or trigger).
