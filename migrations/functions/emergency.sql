-- Emergency mode (migration 0037; server/src/emergency.rs): the history of an episode is
-- append-only, and a change of mobilisations, tasks or members announces the boxes of the grids
-- it touches for the `emergency` tile layer (tiles/src/schema.rs), whoever writes.

create or replace function emergency_event_append_only() returns trigger language plpgsql as $$
begin
    raise exception using errcode = '42501', message = 'emergency history is append-only',
          constraint = 'emergency_event_append_only';
end $$;

-- An episode deleted (with its area) takes its history along (the cascade runs at trigger
-- depth 1); a direct update or delete of a history row is refused.
create or replace trigger emergency_event_append_only before update or delete on emergency_event
    for each row when (pg_trigger_depth() = 0) execute function emergency_event_append_only();

-- The grids whose emergency counts changed, announced under `emergency` (the layer's own
-- table name: the base map's in-memory layers are not re-read for it).
create or replace function gridmap_tiles_emergency_changed() returns trigger language plpgsql as $$
declare
    grids bigint[];
begin
    if tg_table_name = 'party_member' then
        if tg_op = 'DELETE' then
            grids := array(select b.grid_id from old_rows o join building b on b.id = o.building_id);
        elsif tg_op = 'UPDATE' then
            grids := array(select b.grid_id from new_rows o join building b on b.id = o.building_id
                           union select b.grid_id from old_rows o join building b on b.id = o.building_id);
        else
            grids := array(select b.grid_id from new_rows o join building b on b.id = o.building_id);
        end if;
    elsif tg_op = 'DELETE' then
        grids := array(select distinct grid_id from old_rows);
    else
        grids := array(select distinct grid_id from new_rows);
    end if;
    perform gridmap_tiles_announce('emergency', array(
        select box2d(g.geom_3857) from grid g where g.id = any(grids)));
    return null;
end $$;

create or replace trigger emergency_mobilisation_tiles_insert after insert on emergency_mobilisation
    referencing new table as new_rows for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger emergency_mobilisation_tiles_update after update on emergency_mobilisation
    referencing new table as new_rows old table as old_rows
    for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger emergency_task_tiles_insert after insert on emergency_task
    referencing new table as new_rows for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger emergency_task_tiles_update after update on emergency_task
    referencing new table as new_rows old table as old_rows
    for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger party_member_tiles_insert after insert on party_member
    referencing new table as new_rows for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger party_member_tiles_update after update on party_member
    referencing new table as new_rows old table as old_rows
    for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger party_member_tiles_delete after delete on party_member
    referencing old table as old_rows for each statement execute function gridmap_tiles_emergency_changed();
create or replace trigger party_member_touch before update on party_member
    for each row execute function gridmap_touch();
