-- Red building leaders (红色楼长, 一楼一长, 一年一聘): one leader per building, or per unit (单元),
-- appointed for a year at most. One row per term: a renewal is a new row (`renews` names the
-- term it follows), a replacement ends the current term (`ended_at`, `end_reason`) and starts
-- another; nothing is deleted, so the rows are the building's history of leaders.
--
-- The sign in the stairwell (楼长公示牌) shows `name` and `public_phone`: both are public.
-- `phone` is the leader's private number and, like `account.phone`, never leaves the server
-- except to the planners, admins and the building's grid workers. `account_id` is the leader's
-- own login (role `building_leader`), if they have one; its name is private like every login.
--
-- The older `building.leader_name` / `leader_phone` (migration 0001, filled by imports) stay
-- private card fields; the sign and the coverage come from this table.

alter table account drop constraint account_role_check;
alter table account add constraint account_role_check
    check (role in ('resident', 'rider', 'grid_worker', 'planner', 'admin', 'building_leader'));

create extension if not exists btree_gist;

create table building_leader (
    id            bigint generated always as identity,
    building_id   bigint not null,
    -- NULL: the leader of the whole building (楼长); 1…: of that unit (单元长).
    unit          integer,
    name          text not null,
    public_phone  text,
    phone         text,
    account_id    bigint,
    chosen_by     text not null,
    term_start    date not null,
    -- The last day of the term (inclusive).
    term_end      date not null,
    renews        bigint,
    ended_at      timestamptz,
    end_reason    text,
    version       integer not null default 1,
    source        text not null default 'operator',
    created_by    text,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    constraint building_leader_pkey primary key (id),
    constraint building_leader_building_fkey foreign key (building_id) references building (id) on delete cascade,
    constraint building_leader_account_fkey foreign key (account_id) references account (id) on delete set null,
    constraint building_leader_renews_fkey foreign key (renews) references building_leader (id),
    constraint building_leader_unit_range check (unit is null or unit between 1 and 100),
    constraint building_leader_name_not_blank check (btrim(name) <> '' and char_length(name) <= 64),
    constraint building_leader_public_phone_format check (public_phone is null or public_phone ~ '^[0-9+() -]{3,32}$'),
    constraint building_leader_phone_format check (phone is null or phone ~ '^[0-9+() -]{3,32}$'),
    constraint building_leader_chosen_by_check check (chosen_by in ('self', 'residents', 'organisation')),
    -- 一年一聘: a term is one year at most.
    constraint building_leader_term_order check (term_end >= term_start),
    constraint building_leader_term_one_year check (term_end < term_start + interval '1 year'),
    constraint building_leader_end_reason_check check (
        (ended_at is null and end_reason is null) or (ended_at is not null and end_reason in ('replaced', 'ended'))),
    constraint building_leader_version_positive check (version >= 1),
    -- 一楼一长: the terms of one building (or unit) that have not been ended never overlap.
    constraint building_leader_no_overlap exclude using gist (
        building_id with =, (coalesce(unit, 0)) with =, daterange(term_start, term_end, '[]') with &&)
        where (ended_at is null)
);
create index building_leader_building_idx on building_leader (building_id, term_end) where ended_at is null;
create index building_leader_account_idx on building_leader (account_id) where account_id is not null;
comment on column building_leader.phone is 'Private number of the leader; never in a public response';
comment on column building_leader.public_phone is 'The number on the public sign in the stairwell';
