-- A report must not be assigned from a copy of the grids that a re-draw has already replaced.
-- The servers assign from an in-memory index (reports/index.rs) that is rebuilt after a grid
-- change commits and its NOTIFY arrives; a report stored in that window, or while the change
-- was committing, would keep the old grid — or a deleted one — because the change's own
-- re-assignment (gridmap_reassign_reports) ran before the report existed.
--
-- So every change to the index's inputs (grids, communities, the county) bumps a generation
-- number, under an exclusive advisory lock taken before the statement touches any row; intake
-- reads the generation under the shared lock, which it holds until its commit:
-- - a report whose index is as new as the generation is assigned correctly, and no change can
--   commit until the report has (the change's re-assignment then sees it);
-- - a report whose index is older is assigned again by PostgreSQL, in a statement that starts
--   after the lock is held, so it sees every committed change (server/src/reports/commit.rs).
-- Taking the lock before any row lock keeps the two from deadlocking on the report's foreign
-- key to grid.
create table grid_index_generation (
    only_row   boolean primary key default true,
    generation bigint not null default 0,
    constraint grid_index_generation_one_row check (only_row)
);
insert into grid_index_generation default values;

-- The advisory lock's key: 'gridmap' in ASCII, as a number.
create function gridmap_index_lock_key() returns bigint language sql immutable as 'select 29117719583220080';

-- Intake: the current generation, holding the shared lock until this transaction ends.
-- `seen` is the generation in the calling statement's snapshot (a plain subquery argument);
-- if a change committed between that snapshot and the lock, the statement cannot assign again
-- correctly (it would read the old grids), so it stops and the server retries with the lock
-- taken by an earlier statement (server/src/reports/commit.rs). NULL skips the check.
create function gridmap_index_generation(seen bigint) returns bigint language plpgsql volatile as $$
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
create function gridmap_index_changing() returns trigger language plpgsql as $$
begin
    perform pg_advisory_xact_lock(gridmap_index_lock_key());
    update grid_index_generation set generation = generation + 1;
    return null;
end $$;

create trigger grid_index_changing before insert or update or delete or truncate on grid
    for each statement execute function gridmap_index_changing();
create trigger community_index_changing before insert or update or delete or truncate on community
    for each statement execute function gridmap_index_changing();
create trigger area_index_changing before insert or update or delete or truncate on area
    for each statement execute function gridmap_index_changing();
