-- Issue 23 §2: door-knocking rounds (敲门行动) and the people's-sentiment log (民情日志).
-- The rules (who opens a round, when a building is done, who reads the log) are in
-- server/src/rounds.rs and server/src/sentiment.rs and in docs/field-work.md.

-- A round: every household of its grids is to be knocked on within a period. Its scope is one
-- grid, one community or one county (exactly one of the three ids, matching `scope`). A round is
-- running until it is closed; it closes only when every building of its grids is done.
create table door_round (
    id            bigint generated always as identity,
    scope         text not null,
    grid_id       bigint,
    community_id  bigint,
    county_id     bigint,
    name          text not null,
    starts_on     date not null,
    ends_on       date not null,
    opened_by     bigint,
    opened_at     timestamptz not null default now(),
    closed_at     timestamptz,
    closed_by     bigint,
    source        text not null default 'operator',
    constraint door_round_pkey primary key (id),
    constraint door_round_scope_check check (scope in ('grid', 'community', 'county')),
    constraint door_round_scope_target check (
        (scope = 'grid') = (grid_id is not null)
        and (scope = 'community') = (community_id is not null)
        and (scope = 'county') = (county_id is not null)),
    constraint door_round_period_order check (ends_on >= starts_on),
    constraint door_round_name_length check (btrim(name) <> '' and char_length(name) <= 100),
    constraint door_round_grid_fkey foreign key (grid_id) references grid (id) on delete cascade,
    constraint door_round_community_fkey foreign key (community_id) references community (id),
    constraint door_round_county_fkey foreign key (county_id) references county (id),
    constraint door_round_opened_by_fkey foreign key (opened_by) references account (id) on delete set null,
    constraint door_round_closed_by_fkey foreign key (closed_by) references account (id) on delete set null
);
create index door_round_running_idx on door_round (id) where closed_at is null;

-- The grids of each round, as they are now (a re-drawn grid joins or leaves a community round).
create view door_round_grid as
select r.id as round_id, g.id as grid_id
  from door_round r join grid g on r.scope = 'grid' and g.id = r.grid_id
union all
select r.id, g.id
  from door_round r join grid g on r.scope = 'community' and g.community_id = r.community_id
union all
select r.id, g.id
  from door_round r
  join subdistrict s on r.scope = 'county' and s.county_id = r.county_id
  join community c on c.subdistrict_id = s.id
  join grid g on g.community_id = c.id;

-- One visit to a building (or one unit of it): who, when, how many households, the outcome.
-- `households` counts the households the visit settled, whatever the outcome: reached at home
-- (在家), not at home (不在家) or refused (拒访). `idempotency_key` makes an offline resend
-- exactly-once (the same key and payload get the stored answer; another payload a 409).
create table door_visit (
    id               bigint generated always as identity,
    round_id         bigint not null,
    building_id      bigint,
    unit             integer,
    visitor_id       bigint,
    visited_at       timestamptz not null,
    households       integer not null,
    outcome          text not null,
    -- Private: what the worker noted. Never in a public response.
    note             text not null default '',
    idempotency_key  uuid,
    payload_hash     bytea,
    source           text not null default 'operator',
    created_at       timestamptz not null default now(),
    constraint door_visit_pkey primary key (id),
    constraint door_visit_round_fkey foreign key (round_id) references door_round (id) on delete cascade,
    constraint door_visit_building_fkey foreign key (building_id) references building (id) on delete set null,
    constraint door_visit_visitor_fkey foreign key (visitor_id) references account (id) on delete set null,
    constraint door_visit_outcome_check check (outcome in ('at_home', 'not_home', 'refused')),
    constraint door_visit_households_range check (households between 1 and 10000),
    constraint door_visit_unit_range check (unit is null or unit between 1 and 100),
    constraint door_visit_note_length check (char_length(note) <= 500),
    constraint door_visit_idempotency_key_key unique (idempotency_key)
);
create index door_visit_round_building_idx on door_visit (round_id, building_id);

-- Per running round and grid: residential buildings (households > 0), those done (the
-- households of their visits, any outcome, reach the building's count), households, households
-- settled (capped per building) and households reached at home. The coverage tile layer and the
-- API read it.
create view door_round_progress as
with b as (
    select rg.round_id, rg.grid_id, bl.id as building_id, bl.households,
           coalesce(v.settled, 0) as settled, coalesce(v.at_home, 0) as at_home
      from door_round_grid rg
      join door_round r on r.id = rg.round_id
      join building bl on bl.grid_id = rg.grid_id and bl.households > 0
      left join lateral (
            select sum(dv.households) as settled,
                   sum(dv.households) filter (where dv.outcome = 'at_home') as at_home
              from door_visit dv where dv.round_id = rg.round_id and dv.building_id = bl.id) v on true
)
select round_id, grid_id,
       count(*)::bigint as buildings,
       count(*) filter (where settled >= households)::bigint as buildings_done,
       sum(households)::bigint as households,
       sum(least(settled, households))::bigint as households_settled,
       sum(least(at_home, households))::bigint as households_at_home
  from b
 group by round_id, grid_id;

-- The people's-sentiment log: dated entries per grid or building, tags from a fixed list.
-- Private as a whole (the grid's workers, planners, admins). `report_id` links an entry to the
-- report it was turned into (at most one); the report is found from the entry and back.
create table sentiment_entry (
    id           bigint generated always as identity,
    grid_id      bigint,
    building_id  bigint,
    entry_date   date not null,
    body         text not null,
    tags         text[] not null default '{}',
    author_id    bigint,
    report_id    bigint,
    source       text not null default 'operator',
    created_at   timestamptz not null default now(),
    constraint sentiment_entry_pkey primary key (id),
    constraint sentiment_entry_grid_fkey foreign key (grid_id) references grid (id) on delete set null,
    constraint sentiment_entry_building_fkey foreign key (building_id) references building (id) on delete set null,
    constraint sentiment_entry_author_fkey foreign key (author_id) references account (id) on delete set null,
    constraint sentiment_entry_report_fkey foreign key (report_id) references report (id),
    constraint sentiment_entry_report_key unique (report_id),
    constraint sentiment_entry_body_length check (btrim(body) <> '' and char_length(body) <= 2000),
    constraint sentiment_entry_tags_known check (tags <@ array[
        'dispute', 'policy', 'key_group_care', 'livelihood', 'safety', 'environment', 'suggestion'
    ]::text[])
);
create index sentiment_entry_grid_idx on sentiment_entry (grid_id, entry_date desc);
create index sentiment_entry_building_idx on sentiment_entry (building_id);
