-- Points (migrations 0004, 0036): which earning group an account's role belongs to, and the
-- masked name public lists show, in one place for the monthly leaderboard and the yearly
-- rankings (server/src/reports/points.rs, server/src/points/).

-- The earning group of a role: the group that names it, else residents (an account whose role
-- no group names — a planner, a station host — earns as a resident, as the leaderboard always
-- labelled it).
create or replace function gridmap_points_group_of(account_role text) returns text
language sql stable as $$
    select coalesce((select g.code from points_group g where account_role = any (g.roles) order by g.sort, g.code limit 1),
                    'residents')
$$;

-- A name as public lists show it (张**): the first character and a star for each other one
-- (at least one). Without a display name, the group's neutral label: a login name is never
-- public, and neither is a full name, which would tie a rider to the reports near their route.
create or replace function gridmap_points_public_name(display_name text, account_role text) returns text
language sql stable as $$
    select coalesce(left(display_name, 1) || repeat('*', greatest(char_length(display_name) - 1, 1)),
                    case account_role when 'rider' then '骑手' when 'grid_worker' then '网格员' else '居民' end)
$$;
