-- Logins end on every instance at once (migration 0025, docs/deploy.md): each instance caches
-- live tokens for a few seconds and drops its cache when told that a token, an account's
-- name/role/password/disabled flag or a grid assignment changed — by any instance, `gridmap user
-- add`, or plain SQL. Statement triggers: one notification per statement, whatever the number of
-- rows. Logins (inserts into session_token) are not announced: a new token is in no one's cache.

create or replace function gridmap_logins_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('gridmap_logins', tg_table_name);
    return null;
end $$;

create or replace trigger session_token_logins_changed after update or delete or truncate on session_token
    for each statement execute function gridmap_logins_changed();
create or replace trigger account_logins_changed after update of name, role, password_hash, disabled, part_time_grid_worker
    or delete or truncate on account
    for each statement execute function gridmap_logins_changed();
create or replace trigger grid_assignment_logins_changed after insert or update or delete or truncate on grid_assignment
    for each statement execute function gridmap_logins_changed();
