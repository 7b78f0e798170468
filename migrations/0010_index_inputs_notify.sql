-- The servers' in-memory assignment index holds more than grid polygons: each grid's subdistrict
-- (rule 3's queue, through its community) and the county boundary (the 500 m margin). Grid
-- changes already notify (0004); a change to communities or to the county boundary must too, or
-- a running server would answer rule 3 or the margin from an outdated copy.
create function gridmap_index_inputs_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('gridmap_grids_changed', '');
    return null;
end $$;

create trigger community_index_changed after insert or update or delete or truncate on community
    for each statement execute function gridmap_index_inputs_changed();
create trigger area_index_changed after insert or update or delete or truncate on area
    for each statement execute function gridmap_index_inputs_changed();
