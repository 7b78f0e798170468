-- Emergency mode (平急融合, "一键启动", issue 24 §2; docs/emergency.md): the registry of party
-- members registered at their residence (居住地报到党员), squads per grid, emergency episodes
-- switched on for a county, subdistrict or community by an admin, the mobilisation of every
-- member living there (one row per member and episode, written in the starting transaction),
-- the task list of every grid of the area, check-ins, and the append-only history of every
-- state change. A wish gains an optional photo (issue 24 §1). The rules are in
-- server/src/emergency.rs and server/src/wishes.rs.
--
-- Private: a member's name and phone, who started or ended an episode, who checked a member in,
-- who added or finished a task (logins), a wish's photo. The public sees episodes (area, reason,
-- times) and counts per grid; the map shows counts only.

-- ---------------------------------------------------------------------------------------------
-- The member registry. A member lives in a building (hence a grid); `account_id` links the
-- member's own login, when they have one, so they can check in and see their tasks themselves.
create table party_member (
    id            bigint generated always as identity,
    name          text not null,
    phone         text,
    building_id   bigint not null,
    skills        text[] not null default '{}',
    availability  text not null default 'anytime',
    account_id    bigint,
    squad_id      bigint,
    active        boolean not null default true,
    source        text not null default 'operator',
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint party_member_pkey primary key (id),
    constraint party_member_building_fkey foreign key (building_id) references building (id) on delete cascade,
    constraint party_member_account_fkey foreign key (account_id) references account (id) on delete set null,
    constraint party_member_account_key unique (account_id),
    constraint party_member_name_length check (btrim(name) <> '' and char_length(name) <= 64),
    constraint party_member_phone_format check (phone is null or phone ~ '^[0-9+() -]{3,32}$'),
    constraint party_member_availability_check check (availability in ('anytime', 'weekdays', 'weekends', 'evenings', 'on_call')),
    constraint party_member_skills_count check (cardinality(skills) <= 10)
);
create index party_member_building_idx on party_member (building_id);
create index party_member_squad_idx on party_member (squad_id) where squad_id is not null;
comment on column party_member.name is 'Private: never in a public response';
comment on column party_member.phone is 'Private: the grid''s workers, planners and admins only';

-- Squads (编队分组) of a grid's members, each with a leader from among them.
create table squad (
    id                bigint generated always as identity,
    grid_id           bigint not null,
    name              text not null,
    leader_member_id  bigint,
    source            text not null default 'operator',
    created_at        timestamptz not null default now(),
    constraint squad_pkey primary key (id),
    constraint squad_grid_fkey foreign key (grid_id) references grid (id) on delete cascade,
    constraint squad_leader_fkey foreign key (leader_member_id) references party_member (id) on delete set null,
    constraint squad_name_per_grid unique (grid_id, name),
    constraint squad_name_length check (btrim(name) <> '' and char_length(name) <= 64)
);
alter table party_member add constraint party_member_squad_fkey
    foreign key (squad_id) references squad (id) on delete set null;

-- ---------------------------------------------------------------------------------------------
-- An emergency episode: an area in emergency mode from `started_at` until `ended_at`. At most
-- one active episode per area (the index below); overlapping areas (a community inside an
-- active subdistrict) are refused by server/src/emergency.rs under an advisory lock.
create table emergency_episode (
    id          bigint generated always as identity,
    area_kind   text not null,
    area_id     bigint not null,
    -- The area's name and county when it started (the county scopes county admins).
    area_name   text not null,
    county_id   bigint,
    reason      text not null,
    started_by  bigint,
    started_at  timestamptz not null default now(),
    ended_by    bigint,
    ended_at    timestamptz,
    end_reason  text,
    version     integer not null default 1,
    source      text not null default 'operator',
    constraint emergency_episode_pkey primary key (id),
    constraint emergency_episode_county_fkey foreign key (county_id) references county (id),
    constraint emergency_episode_started_by_fkey foreign key (started_by) references account (id) on delete set null,
    constraint emergency_episode_ended_by_fkey foreign key (ended_by) references account (id) on delete set null,
    constraint emergency_episode_area_kind_check check (area_kind in ('county', 'subdistrict', 'community')),
    constraint emergency_episode_reason_length check (btrim(reason) <> '' and char_length(reason) <= 200),
    constraint emergency_episode_end_reason_length check (end_reason is null or (btrim(end_reason) <> '' and char_length(end_reason) <= 200)),
    constraint emergency_episode_ended_whole check ((ended_at is null) = (end_reason is null)),
    constraint emergency_episode_version_positive check (version >= 1)
);
create unique index emergency_episode_one_active on emergency_episode (area_kind, area_id) where ended_at is null;
comment on column emergency_episode.started_by is 'Private: staff only';

-- A member mobilised by an episode: a volunteer of the grid they lived in when it started.
create table emergency_mobilisation (
    episode_id     bigint not null,
    member_id      bigint not null,
    grid_id        bigint not null,
    state          text not null default 'mobilised',
    mobilised_at   timestamptz not null default now(),
    checked_in_at  timestamptz,
    checked_in_by  bigint,
    checkin_kind   text,
    released_at    timestamptz,
    constraint emergency_mobilisation_pkey primary key (episode_id, member_id),
    constraint emergency_mobilisation_episode_fkey foreign key (episode_id) references emergency_episode (id) on delete cascade,
    constraint emergency_mobilisation_member_fkey foreign key (member_id) references party_member (id) on delete cascade,
    constraint emergency_mobilisation_grid_fkey foreign key (grid_id) references grid (id) on delete cascade,
    constraint emergency_mobilisation_checked_in_by_fkey foreign key (checked_in_by) references account (id) on delete set null,
    constraint emergency_mobilisation_state_check check (state in ('mobilised', 'checked_in')),
    constraint emergency_mobilisation_checkin_kind_check check (checkin_kind is null or checkin_kind in ('self', 'worker')),
    constraint emergency_mobilisation_checked_in_whole check ((state = 'checked_in') = (checked_in_at is not null))
);
-- A member serves one episode at a time.
create unique index emergency_mobilisation_one_active on emergency_mobilisation (member_id) where released_at is null;
create index emergency_mobilisation_grid_idx on emergency_mobilisation (grid_id, episode_id);

-- The task list of a grid in an episode: seeded from the template, then edited by its workers.
create table emergency_task (
    id          bigint generated always as identity,
    episode_id  bigint not null,
    grid_id     bigint not null,
    title       text not null,
    done_at     timestamptz,
    done_by     bigint,
    created_by  bigint,
    created_at  timestamptz not null default now(),
    constraint emergency_task_pkey primary key (id),
    constraint emergency_task_episode_fkey foreign key (episode_id) references emergency_episode (id) on delete cascade,
    constraint emergency_task_grid_fkey foreign key (grid_id) references grid (id) on delete cascade,
    constraint emergency_task_done_by_fkey foreign key (done_by) references account (id) on delete set null,
    constraint emergency_task_created_by_fkey foreign key (created_by) references account (id) on delete set null,
    constraint emergency_task_title_length check (btrim(title) <> '' and char_length(title) <= 200)
);
create index emergency_task_grid_idx on emergency_task (episode_id, grid_id);

-- Every state change of an episode: started, mobilised (one per member), checked_in,
-- task_added, task_done, ended, released (one per member). Append-only
-- (migrations/functions/emergency.sql).
create table emergency_event (
    id          bigint generated always as identity,
    episode_id  bigint not null,
    kind        text not null,
    member_id   bigint,
    grid_id     bigint,
    task_id     bigint,
    actor_id    bigint,
    actor       text,
    detail      text,
    at          timestamptz not null default now(),
    constraint emergency_event_pkey primary key (id),
    constraint emergency_event_episode_fkey foreign key (episode_id) references emergency_episode (id) on delete cascade,
    constraint emergency_event_actor_fkey foreign key (actor_id) references account (id) on delete set null,
    constraint emergency_event_kind_check check (kind in ('started', 'mobilised', 'checked_in', 'task_added', 'task_done', 'ended', 'released'))
);
create index emergency_event_episode_idx on emergency_event (episode_id, id);
create index emergency_event_member_idx on emergency_event (member_id) where member_id is not null;

-- ---------------------------------------------------------------------------------------------
-- A wish's optional photo (issue 24 §1): stored stripped of metadata like report photos
-- (server/src/reports/photos.rs); seen only by the wish's resident, its claimant and staff.
create table wish_photo (
    wish_id     bigint not null,
    media_type  text not null,
    bytes       bytea not null,
    created_at  timestamptz not null default now(),
    constraint wish_photo_pkey primary key (wish_id),
    constraint wish_photo_wish_fkey foreign key (wish_id) references wish (id) on delete cascade,
    constraint wish_photo_media_type_check check (media_type in ('image/jpeg', 'image/png', 'image/webp')),
    constraint wish_photo_size check (octet_length(bytes) between 1 and 5242880)
);
