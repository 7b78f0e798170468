-- Points that can be spent (积分超市, issue 24 §3). Additive: the ledger of migration 0004 stays
-- the one record of points; this adds who earns what (groups and rules, rows not code), the
-- catalogue with its stock, and redemptions, which debit the ledger in the transaction that
-- takes the stock (server/src/points/). docs/points.md explains the rules.

-- Roles: `merchant` (a shop that hands over what was redeemed there). The list is the full one:
-- 'volunteer' comes from the micro-wishes migration (0035); naming it here too keeps the check
-- right whichever of the two runs last.
alter table account drop constraint account_role_check;
alter table account add constraint account_role_check check (role in (
    'resident', 'rider', 'grid_worker', 'planner', 'admin', 'building_leader', 'station_host',
    'volunteer', 'merchant'));

-- ---------------------------------------------------------------------------------------------
-- Earning groups (积分群体): each earns by its own rules and has its own yearly 最美 ranking.
-- `roles`: the account roles that belong to the group (an account whose role no group names
-- earns as a resident, as the monthly leaderboard always labelled it). Party members have no
-- role: the member registry (issue 24 §2) awards them by naming the group.
create table points_group (
    code      text not null,
    name_zh   text not null,
    name_en   text not null,
    roles     text[] not null default '{}',
    sort      integer not null default 0,
    constraint points_group_pkey primary key (code),
    constraint points_group_code_format check (code ~ '^[a-z][a-z_]{1,39}$')
);

insert into points_group (code, name_zh, name_en, roles, sort) values
    ('grid_workers', '网格员', 'Grid workers', '{grid_worker}', 1),
    ('building_leaders', '红色楼长', 'Building leaders', '{building_leader}', 2),
    ('party_members', '报到党员', 'Party members', '{}', 3),
    ('volunteers', '志愿者', 'Volunteers', '{volunteer}', 4),
    ('residents', '居民', 'Residents', '{resident}', 5),
    ('riders', '骑手', 'Riders', '{rider}', 6);

-- Earning rules (积分规则): what an event earns a member of a group. `event` is what the
-- feature that awards says happened (`points::award`); a rule that is inactive, or missing for
-- the earner's group, earns nothing. Changing an amount changes future awards only: the ledger
-- row keeps the amount and the rule it was earned by.
create table points_rule (
    id          bigint generated always as identity,
    event       text not null,
    group_code  text not null,
    points      integer not null,
    active      boolean not null default true,
    description text not null default '',
    version     integer not null default 1,
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    constraint points_rule_pkey primary key (id),
    constraint points_rule_group_fkey foreign key (group_code) references points_group (code),
    constraint points_rule_once unique (event, group_code),
    constraint points_rule_event_format check (event ~ '^[a-z][a-z_]{1,39}$'),
    constraint points_rule_points_range check (points between 1 and 10000),
    constraint points_rule_description_length check (char_length(description) <= 200)
);
create trigger points_rule_touch before update on points_rule for each row execute function gridmap_touch();

-- report_accepted: today's 10 points (was POINTS_PER_ACCEPTED_REPORT in the code) for every
-- group a reporter can be in. The others are awarded by the features that own their events.
insert into points_rule (event, group_code, points, description)
select 'report_accepted', code, 10, '上报问题被受理（立案）' from points_group;
insert into points_rule (event, group_code, points, description) values
    ('wish_completed', 'volunteers', 20, '认领并完成一个微心愿'),
    ('wish_completed', 'party_members', 20, '认领并完成一个微心愿'),
    ('emergency_checkin', 'party_members', 30, '应急状态下到居住地网格报到'),
    ('emergency_checkin', 'volunteers', 30, '应急状态下到网格报到'),
    ('door_round_completed', 'grid_workers', 50, '一轮敲门行动结束（本轮有入户记录）'),
    ('door_round_completed', 'riders', 50, '一轮敲门行动结束（兼职网格员，本轮有入户记录）');

-- ---------------------------------------------------------------------------------------------
-- The ledger learns where a row came from. Old rows keep nulls (they are report credits and
-- reversals: the report says where they came from).
alter table points_ledger
    add column rule_id bigint,
    add column group_code text,
    add column source_kind text,
    add column source_id bigint,
    add column redemption_id bigint;
alter table points_ledger add constraint points_ledger_rule_fkey foreign key (rule_id) references points_rule (id);
alter table points_ledger add constraint points_ledger_group_fkey foreign key (group_code) references points_group (code);
alter table points_ledger drop constraint points_ledger_reason_check;
-- The fixed reasons, or any event a rule awards.
alter table points_ledger add constraint points_ledger_reason_check check (
    reason in ('report_accepted', 'report_reversed', 'redeemed', 'redemption_refunded') or rule_id is not null);
-- An event earns once per earner and source (the same wish completed twice is one award).
alter table points_ledger add constraint points_ledger_award_once unique (account_id, reason, source_kind, source_id);
alter table points_ledger add constraint points_ledger_source_pair check ((source_kind is null) = (source_id is null));

-- ---------------------------------------------------------------------------------------------
-- The catalogue (积分超市): what points buy, where it is handed over, and how many are left.
create table points_item (
    id           bigint generated always as identity,
    name         text not null,
    description  text not null default '',
    kind         text not null,
    cost         integer not null,
    -- NULL: unlimited (a service, an offset); else what is left, never below zero.
    stock        integer,
    -- Exactly one place of hand-over: a merchant's login, a warm station, or a community (its
    -- service centre, where its grid workers hand over).
    merchant_id  bigint,
    station_id   bigint,
    community_id bigint,
    -- Where to collect, as the public sees it (a shop's name and street); empty: the station's
    -- or the community's name.
    place        text not null default '',
    active       boolean not null default true,
    version      integer not null default 1,
    source       text not null default 'operator',
    created_by   text,
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    constraint points_item_pkey primary key (id),
    constraint points_item_merchant_fkey foreign key (merchant_id) references account (id),
    constraint points_item_station_fkey foreign key (station_id) references station (id),
    constraint points_item_community_fkey foreign key (community_id) references community (id),
    constraint points_item_name_not_blank check (btrim(name) <> '' and char_length(name) <= 64),
    constraint points_item_description_length check (char_length(description) <= 500),
    constraint points_item_place_length check (char_length(place) <= 120),
    constraint points_item_kind_check check (kind in ('goods', 'property_fee_offset', 'merchant_discount', 'free_service')),
    constraint points_item_cost_range check (cost between 1 and 100000),
    constraint points_item_stock_not_negative check (stock is null or stock >= 0),
    constraint points_item_one_place check (num_nonnulls(merchant_id, station_id, community_id) = 1),
    constraint points_item_version_positive check (version >= 1)
);
create index points_item_merchant_idx on points_item (merchant_id) where merchant_id is not null;
create trigger points_item_touch before update on points_item for each row execute function gridmap_touch();

-- ---------------------------------------------------------------------------------------------
-- Redemptions (兑换): pending hand-over → handed_over, or cancelled (the points and the stock
-- come back in the same transaction). Exactly once per client-made Idempotency-Key.
create table points_redemption (
    id              bigint generated always as identity,
    item_id         bigint not null,
    account_id      bigint not null,
    quantity        integer not null,
    points          integer not null,
    status          text not null default 'pending',
    idempotency_key uuid not null,
    payload_hash    bytea not null,
    handed_over_by  bigint,
    handed_over_at  timestamptz,
    cancelled_by    bigint,
    cancelled_at    timestamptz,
    cancel_reason   text,
    source          text not null default 'api',
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    constraint points_redemption_pkey primary key (id),
    constraint points_redemption_item_fkey foreign key (item_id) references points_item (id),
    constraint points_redemption_account_fkey foreign key (account_id) references account (id) on delete cascade,
    constraint points_redemption_handed_over_by_fkey foreign key (handed_over_by) references account (id) on delete set null,
    constraint points_redemption_cancelled_by_fkey foreign key (cancelled_by) references account (id) on delete set null,
    constraint points_redemption_key_unique unique (idempotency_key),
    constraint points_redemption_quantity_range check (quantity between 1 and 10),
    constraint points_redemption_points_positive check (points > 0),
    constraint points_redemption_status_check check (status in ('pending', 'handed_over', 'cancelled')),
    constraint points_redemption_state_fields check (
        (status = 'pending' and handed_over_at is null and cancelled_at is null)
        or (status = 'handed_over' and handed_over_at is not null and cancelled_at is null)
        or (status = 'cancelled' and cancelled_at is not null and handed_over_at is null)),
    constraint points_redemption_cancel_reason_length check (cancel_reason is null or char_length(cancel_reason) <= 200)
);
create index points_redemption_account_idx on points_redemption (account_id, created_at);
create index points_redemption_item_idx on points_redemption (item_id, status);
create trigger points_redemption_touch before update on points_redemption for each row execute function gridmap_touch();
comment on column points_redemption.account_id is 'The redeemer: private (the public sees rankings with masked names only)';

alter table points_ledger add constraint points_ledger_redemption_fkey
    foreign key (redemption_id) references points_redemption (id) on delete cascade;
alter table points_ledger add constraint points_ledger_redemption_once unique (redemption_id, reason);
alter table points_ledger add constraint points_ledger_redemption_reason check (
    (reason in ('redeemed', 'redemption_refunded')) = (redemption_id is not null));
create index points_ledger_group_idx on points_ledger (group_code, created_at) where group_code is not null;
