-- Generalised outlines (migration 0029): rebuild the community, subdistrict and county outlines
-- that contain the given communities, from `outline_source`, in the transaction of the write.
-- Called by statement triggers on grid (shape, community, household recount) and
-- grid_assignment (worker counts), with the communities of the old and the new rows.

create or replace function gridmap_outlines_refresh(communities bigint[]) returns void
language plpgsql as $$
declare
    subdistricts bigint[];
    counties bigint[];
begin
    communities := array(select distinct c from unnest(communities) c where c is not null);
    if cardinality(communities) = 0 then
        return;
    end if;
    subdistricts := array(select distinct subdistrict_id from community where id = any(communities));
    counties := array(select distinct county_id from subdistrict
                       where id = any(subdistricts) and county_id is not null);
    delete from outline
     where (level = 'community' and key = any(communities))
        or (level = 'subdistrict' and key = any(subdistricts))
        or (level = 'county' and key = any(counties));
    insert into outline (level, key, grids, households, workers, balance_min, balance_max, geom)
    select level, key, grids, households, workers, balance_min, balance_max, geom
      from outline_source
     where ((level = 'community' and key = any(communities))
         or (level = 'subdistrict' and key = any(subdistricts))
         or (level = 'county' and key = any(counties)))
       and not ST_IsEmpty(geom);
end $$;

create or replace function gridmap_outlines_grid_changed() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform gridmap_outlines_refresh(array(select community_id from new_rows));
    elsif tg_op = 'UPDATE' then
        perform gridmap_outlines_refresh(array(
            select community_id from new_rows union select community_id from old_rows));
    else
        perform gridmap_outlines_refresh(array(select community_id from old_rows));
    end if;
    return null;
end $$;
create or replace trigger grid_outlines_insert after insert on grid
    referencing new table as new_rows for each statement execute function gridmap_outlines_grid_changed();
create or replace trigger grid_outlines_update after update on grid
    referencing old table as old_rows new table as new_rows for each statement execute function gridmap_outlines_grid_changed();
create or replace trigger grid_outlines_delete after delete on grid
    referencing old table as old_rows for each statement execute function gridmap_outlines_grid_changed();

create or replace function gridmap_outlines_assignment_changed() returns trigger language plpgsql as $$
begin
    if tg_op = 'INSERT' then
        perform gridmap_outlines_refresh(array(
            select g.community_id from grid g where g.id in (select grid_id from new_rows)));
    elsif tg_op = 'UPDATE' then
        perform gridmap_outlines_refresh(array(
            select g.community_id from grid g
             where g.id in (select grid_id from new_rows union select grid_id from old_rows)));
    else
        perform gridmap_outlines_refresh(array(
            select g.community_id from grid g where g.id in (select grid_id from old_rows)));
    end if;
    return null;
end $$;
create or replace trigger grid_assignment_outlines_insert after insert on grid_assignment
    referencing new table as new_rows for each statement execute function gridmap_outlines_assignment_changed();
create or replace trigger grid_assignment_outlines_update after update on grid_assignment
    referencing old table as old_rows new table as new_rows for each statement execute function gridmap_outlines_assignment_changed();
create or replace trigger grid_assignment_outlines_delete after delete on grid_assignment
    referencing old table as old_rows for each statement execute function gridmap_outlines_assignment_changed();
