-- The servers' in-memory assignment index: its inputs announce their changes, and a generation
-- number under an advisory lock keeps a report from being assigned from replaced grids
-- (migration 0012 says how).

-- The servers' in-memory assignment index holds more than grid polygons: each grid's subdistrict
-- (rule 3's queue, through its community) and the county boundary (the 500 m margin). Grid
-- changes already notify (0004); a change to communities or to the county boundary must too, or
-- a running server would answer rule 3 or the margin from an outdated copy.
create or replace function gridmap_index_inputs_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('gridmap_grids_changed', '');
    return null;
end $$;

-- The advisory lock's key: 'gridmap' in ASCII, as a number.
create or replace function gridmap_index_lock_key() returns bigint language sql immutable as $$select 29117719583220080$$;

-- Intake: the current generation, holding the shared lock until this transaction ends.
-- `seen` is the generation in the calling statement's snapshot (a plain subquery argument);
-- if a change committed between that snapshot and the lock, the statement cannot assign again
-- correctly (it would read the old grids), so it stops and the server retries with the lock
-- taken by an earlier statement (server/src/reports/commit.rs). NULL skips the check.
create or replace function gridmap_index_generation(seen bigint) returns bigint language plpgsql volatile as $$
declare
    current_generation bigint;
begin
    perform pg_advisory_xact_lock_shared(gridmap_index_lock_key());
    select generation into current_generation from grid_index_generation;
    if seen is not null and seen <> current_generation then
        raise exception 'the grids changed while this statement ran' using errcode = 'GM001';
    end if;
    return current_generation;
end $$;

-- A change to the index's inputs: wait for intakes in flight, then bump the generation.
create or replace function gridmap_index_changing() returns trigger language plpgsql as $$
begin
    perform pg_advisory_xact_lock(gridmap_index_lock_key());
    update grid_index_generation set generation = generation + 1;
    return null;
end $$;
