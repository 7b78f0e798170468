-- Micro-wishes (微心愿, issue 24 §1; docs/wishes.md): a resident publishes a small wish for their
-- building (or a grid worker enters it on their behalf); a volunteer or a grid worker claims it
-- (first come: a conditional update, one claimant at a time), fulfils it, and the resident or
-- the grid's worker confirms. Every step is a row of `wish_event`. The rules are in
-- server/src/wishes.rs.
--
-- Private: who the resident is (`resident_id`, `resident_name`, `resident_phone`), the exact
-- building, who entered the wish and who claimed it. The public board shows a wish's grid and
-- community only; the map shows counts per grid.

-- A new role, `volunteer` (registered party members and volunteers who claim wishes). The
-- list is the whole current one: 0032 added building_leader, 0033 station_host.
alter table account drop constraint account_role_check;
alter table account add constraint account_role_check check (role in (
    'resident', 'rider', 'grid_worker', 'planner', 'admin', 'building_leader', 'station_host', 'volunteer'));

-- A resident's home building, set by the community worker who creates the account: the
-- building the resident's own wishes are for.
alter table account add column building_id bigint;
alter table account add constraint account_building_fkey
    foreign key (building_id) references building (id) on delete set null;
alter table account add constraint account_building_only_residents
    check (building_id is null or role = 'resident');
create index account_building_idx on account (building_id) where building_id is not null;

create table wish (
    id                bigint generated always as identity,
    -- The building the wish is for; its grid (and community) follow from it, also after a
    -- grid is re-drawn.
    building_id       bigint not null,
    category          text not null,
    body              text not null,
    desired_on        date not null,
    state             text not null default 'published',
    -- The resident's own login, when they have one (self-entered, or linked by the worker).
    resident_id       bigint,
    -- Private: the resident as the worker recorded them when entering on their behalf.
    resident_name     text,
    resident_phone    text,
    -- Who typed it in: the resident, or the grid worker on their behalf.
    entered_by        bigint,
    -- The current claimant (claimed, completed, confirmed, or failed by them).
    claimant_id       bigint,
    first_claimed_at  timestamptz,
    claimed_at        timestamptz,
    completed_at      timestamptz,
    confirmed_at      timestamptz,
    -- Withdrawn or failed: when, and why.
    ended_at          timestamptz,
    end_reason        text,
    version           integer not null default 1,
    source            text not null default 'operator',
    created_at        timestamptz not null default now(),
    updated_at        timestamptz not null default now(),
    constraint wish_pkey primary key (id),
    constraint wish_building_fkey foreign key (building_id) references building (id) on delete cascade,
    constraint wish_resident_fkey foreign key (resident_id) references account (id) on delete set null,
    constraint wish_entered_by_fkey foreign key (entered_by) references account (id) on delete set null,
    constraint wish_claimant_fkey foreign key (claimant_id) references account (id) on delete set null,
    constraint wish_category_check check (category in ('daily_help', 'medical_trip', 'errands', 'repair', 'companionship', 'other')),
    constraint wish_body_length check (btrim(body) <> '' and char_length(body) <= 500),
    constraint wish_state_check check (state in ('published', 'claimed', 'completed', 'confirmed', 'withdrawn', 'failed')),
    constraint wish_resident_name_length check (resident_name is null or (btrim(resident_name) <> '' and char_length(resident_name) <= 64)),
    constraint wish_resident_phone_format check (resident_phone is null or resident_phone ~ '^[0-9+() -]{3,32}$'),
    constraint wish_end_reason_length check (end_reason is null or char_length(end_reason) <= 500),
    -- One claimant at a time, and a claimed wish always has one.
    constraint wish_claimed_has_claimant check (state not in ('claimed', 'completed') or claimant_id is not null),
    constraint wish_version_positive check (version >= 1)
);
create index wish_building_idx on wish (building_id);
create index wish_open_idx on wish (building_id) where state = 'published';
create index wish_resident_idx on wish (resident_id) where resident_id is not null;
create index wish_claimant_idx on wish (claimant_id) where claimant_id is not null;
comment on column wish.resident_name is 'Private: never in a public response';
comment on column wish.resident_phone is 'Private: shown to the claimant while they hold the claim, the grid''s workers, planners and admins';

-- Every step of a wish (published, claimed, released, completed, confirmed, withdrawn, failed):
-- who, when, from, to, why. Append-only (migrations/functions/wishes.sql).
create table wish_event (
    id          bigint generated always as identity,
    wish_id     bigint not null,
    from_state  text,
    to_state    text not null,
    actor_id    bigint,
    actor       text,
    reason      text,
    at          timestamptz not null default now(),
    constraint wish_event_pkey primary key (id),
    constraint wish_event_wish_fkey foreign key (wish_id) references wish (id) on delete cascade,
    constraint wish_event_actor_fkey foreign key (actor_id) references account (id) on delete set null
);
create index wish_event_wish_idx on wish_event (wish_id, id);
