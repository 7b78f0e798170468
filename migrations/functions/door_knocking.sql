-- Door-knocking rounds (migration 0034): a visit, or a round opened or closed, changes the
-- coverage tiles over its grids. The server drops its own cached tiles before it answers
-- (server/src/changes.rs); these NOTIFYs tell the other instances (and follow plain SQL).
-- The payload names `door_visit`, the table the tiles crate maps to the coverage layer.

create or replace function door_visit_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('gridmap_tiles', json_build_object('table', 'door_visit', 'boxes',
        coalesce((select json_agg(json_build_array(ST_XMin(g.geom_3857), ST_YMin(g.geom_3857),
                                                   ST_XMax(g.geom_3857), ST_YMax(g.geom_3857)))
                    from building b join grid g on g.id = b.grid_id where b.id = new.building_id), '[]'::json))::text);
    return null;
end $$;

create or replace trigger door_visit_notify after insert on door_visit
    for each row execute function door_visit_notify();

create or replace function door_round_notify() returns trigger language plpgsql as $$
begin
    perform pg_notify('gridmap_tiles', json_build_object('table', 'door_visit', 'boxes',
        coalesce((select json_agg(json_build_array(ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e)))
                    from (select ST_Extent(g.geom_3857)::geometry as e
                            from door_round_grid rg join grid g on g.id = rg.grid_id
                           where rg.round_id = new.id) s
                   where e is not null), '[]'::json))::text);
    return null;
end $$;

create or replace trigger door_round_notify after insert or update of closed_at on door_round
    for each row execute function door_round_notify();
