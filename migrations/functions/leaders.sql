-- Red building leaders (migration 0032): what "a current leader" means, in one place, for the
-- API (server/src/leaders.rs), the coverage counts and the tile layers (tiles/src/schema.rs).

-- The county's calendar day (UTC+8, no daylight saving): terms start and end on local days.
create or replace function gridmap_county_today() returns date
language sql stable as $$
    select (now() at time zone 'Asia/Shanghai')::date
$$;

-- A building's leader state today: 'current' (a term that was not ended covers today, for the
-- building or one of its units), 'expired' (none does, but the last term ran out without being
-- ended or renewed), else 'none'.
create or replace function gridmap_leader_state(building bigint) returns text
language sql stable as $$
    select case
        when exists (select 1 from building_leader l
                      where l.building_id = building and l.ended_at is null
                        and gridmap_county_today() between l.term_start and l.term_end) then 'current'
        when exists (select 1 from building_leader l
                      where l.building_id = building and l.ended_at is null
                        and l.term_end < gridmap_county_today()) then 'expired'
        else 'none'
    end
$$;

-- A leader's term changes the coverage of its building and of its grid (tile layers
-- `leader_gaps` and `leader_coverage`): announce both, whoever writes (the server, an import,
-- an operator's SQL), as the other tile tables do (tiles.sql).
create or replace function gridmap_tiles_leader_changed() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform gridmap_tiles_announce('building', array(
            select box2d(b.geom_3857) from building b where b.id in (select building_id from new_rows)));
        perform gridmap_tiles_announce('grid', array(
            select box2d(g.geom_3857) from grid g
             where g.id in (select b.grid_id from building b where b.id in (select building_id from new_rows))));
    elsif tg_op = 'UPDATE' then
        perform gridmap_tiles_announce('building', array(
            select box2d(b.geom_3857) from building b
             where b.id in (select building_id from new_rows union select building_id from old_rows)));
        perform gridmap_tiles_announce('grid', array(
            select box2d(g.geom_3857) from grid g
             where g.id in (select b.grid_id from building b
                             where b.id in (select building_id from new_rows union select building_id from old_rows))));
    else
        perform gridmap_tiles_announce('building', array(
            select box2d(b.geom_3857) from building b where b.id in (select building_id from old_rows)));
        perform gridmap_tiles_announce('grid', array(
            select box2d(g.geom_3857) from grid g
             where g.id in (select b.grid_id from building b where b.id in (select building_id from old_rows))));
    end if;
    return null;
end $$;

create or replace trigger building_leader_tiles_insert after insert on building_leader
    referencing new table as new_rows for each statement execute function gridmap_tiles_leader_changed();
create or replace trigger building_leader_tiles_update after update on building_leader
    referencing new table as new_rows old table as old_rows
    for each statement execute function gridmap_tiles_leader_changed();
create or replace trigger building_leader_tiles_delete after delete on building_leader
    referencing old table as old_rows for each statement execute function gridmap_tiles_leader_changed();
create or replace trigger building_leader_touch before update on building_leader
    for each row execute function gridmap_touch();
