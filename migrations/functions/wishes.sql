-- Micro-wishes (migration 0035; server/src/wishes.rs): the history of a wish is append-only,
-- and a wish row keeps `updated_at` current.

create or replace function wish_event_append_only() returns trigger language plpgsql as $$
begin
    raise exception using errcode = '42501', message = 'wish history is append-only',
          constraint = 'wish_event_append_only';
end $$;

-- A wish deleted with its building takes its history along (the cascade runs at trigger depth
-- 1); a direct update or delete of a history row is refused.
create or replace trigger wish_event_append_only before update or delete on wish_event
    for each row when (pg_trigger_depth() = 0) execute function wish_event_append_only();
create or replace trigger wish_touch before update on wish
    for each row execute function gridmap_touch();
