-- Rules 2 and 3 of report assignment on their own (reports/mod.rs). The server answers rule 1
-- from its in-memory index, which agrees with `gridmap_grid_at` (a property test), so for a
-- point the index found in no grid it asks only for these; re-running rule 1 in SQL was a third
-- of the cost of every such report (bench/reports.sh: a quarter of its points lie in no grid).
create or replace function gridmap_nearest_assignment(p geometry, out grid_id bigint, out assignment text, out subdistrict_id bigint)
language plpgsql stable as $$
declare
    nearest float8;
begin
    -- Rule 2: the nearest grid within 150 m (geodesic), ties to the lowest id.
    select g.id into grid_id
      from grid g
     where ST_DWithin(g.geom::geography, p::geography, 150)
     order by ST_Distance(g.geom::geography, p::geography), g.id
     limit 1;
    if grid_id is not null then
        assignment := 'nearest';
        select c.subdistrict_id into subdistrict_id
          from grid g join community c on c.id = g.community_id where g.id = grid_id;
        return;
    end if;
    -- Rule 3: the nearest grid's subdistrict, ties to the lowest id. `order by g.geom <-> p,
    -- g.id` cannot use the index (the second key makes it a full sort of every grid), so find
    -- the distance nearest-first, then the lowest id at exactly that distance.
    assignment := 'unassigned';
    select g.geom <-> p into nearest from grid g order by g.geom <-> p limit 1;
    if nearest is null then
        return;
    end if;
    select c.subdistrict_id into subdistrict_id
      from grid g join community c on c.id = g.community_id
     where g.id = (select g2.id from grid g2
                    where ST_DWithin(g2.geom, p, nearest) and g2.geom <-> p = nearest
                    order by g2.id limit 1);
end $$;

-- The whole rule set for SQL callers, unchanged in what it answers.
create or replace function gridmap_report_assignment(p geometry, out grid_id bigint, out assignment text, out subdistrict_id bigint)
language plpgsql stable as $$
begin
    grid_id := gridmap_grid_at(p);
    if grid_id is not null then
        assignment := 'covers';
        select c.subdistrict_id into subdistrict_id
          from grid g join community c on c.id = g.community_id where g.id = grid_id;
        return;
    end if;
    select a.grid_id, a.assignment, a.subdistrict_id into grid_id, assignment, subdistrict_id
      from gridmap_nearest_assignment(p) a;
end $$;
