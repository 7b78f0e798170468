//! The demo's points market (积分超市, issue 24 §3), synthetic and deterministic: five merchants
//! (`merchant-01` … `merchant-05`, shop names marked 合成演示), a catalogue of 21 items handed
//! over at those shops, at the first warm station (by `host-01`) and at two communities (the
//! first is `gw-0001`'s, whose grid workers hand over there), earnings this year for the riders,
//! the first grid workers, `leader-0001` and a dozen residents (so that every group but the
//! party members and volunteers has a 最美 ranking), and a few redemptions in every state —
//! `rider-01` has a pending 理发券 at `merchant-01`, a 雨衣 handed over at the station and a
//! cancelled breakfast coupon. Amounts and times follow from row ids and fixed lists only.
//! Every row: `source = 'synthetic-demo'` (items, redemptions) or `source_kind =
//! 'synthetic_demo'` (the ledger's earnings).

use sqlx::{Postgres, Transaction};

use super::{SOURCE, names};

/// The merchants: login, shop name (their account's display name, never public) and the place
/// the public sees on the items.
const MERCHANTS: [(&str, &str, &str); 5] = [
    ("merchant-01", "便民理发店（合成演示）", "便民理发店（合成演示） · 历山路 12 号"),
    ("merchant-02", "家政服务部（合成演示）", "家政服务部（合成演示） · 胜利路 8 号"),
    ("merchant-03", "修鞋配钥匙（合成演示）", "修鞋配钥匙（合成演示） · 鲁山路口"),
    ("merchant-04", "社区便民超市（合成演示）", "社区便民超市（合成演示） · 瑞阳街 20 号"),
    ("merchant-05", "早餐店（合成演示）", "早餐店（合成演示） · 城关菜市场东门"),
];

/// Where an item is handed over.
#[derive(Clone, Copy)]
enum At {
    /// `MERCHANTS[i]`.
    Merchant(usize),
    /// The first warm station.
    Station,
    /// `gw-0001`'s community (0) or another one (1).
    Community(usize),
}

/// name, kind, cost, stock (None: unlimited), where, active.
type ItemRow = (&'static str, &'static str, i32, Option<i32>, At, bool);

const ITEMS: [ItemRow; 21] = [
    ("洗衣液 2kg", "goods", 50, Some(40), At::Community(0), true),
    ("食用油 5L", "goods", 120, Some(20), At::Community(0), true),
    ("大米 10 斤", "goods", 80, Some(30), At::Community(0), true),
    ("抽纸一提", "goods", 30, Some(60), At::Community(0), true),
    ("牙膏牙刷套装", "goods", 40, Some(25), At::Community(1), true),
    ("物业费抵扣 50 元", "property_fee_offset", 500, None, At::Community(0), true),
    ("物业费抵扣 100 元", "property_fee_offset", 1000, None, At::Community(0), true),
    ("停车费抵扣 1 个月", "property_fee_offset", 300, Some(10), At::Community(1), true),
    ("理发券", "free_service", 60, Some(30), At::Merchant(0), true),
    ("家电清洗一次", "free_service", 150, Some(8), At::Merchant(1), true),
    ("修鞋配钥匙", "free_service", 20, None, At::Merchant(2), true),
    ("电动车检修一次", "free_service", 50, Some(15), At::Station, true),
    ("手机贴膜", "free_service", 30, Some(20), At::Station, true),
    ("超市满 50 减 10 元券", "merchant_discount", 80, Some(50), At::Merchant(3), true),
    ("早餐 8 折券", "merchant_discount", 25, Some(100), At::Merchant(4), true),
    ("日用品 9 折券", "merchant_discount", 40, Some(40), At::Merchant(3), true),
    ("骑手雨衣", "goods", 60, Some(15), At::Station, true),
    ("保温杯", "goods", 90, Some(12), At::Station, true),
    ("基础体检一次", "free_service", 300, Some(5), At::Community(1), true),
    ("充电宝租借月卡", "merchant_discount", 45, Some(0), At::Station, true),
    ("旧款劳保手套", "goods", 10, Some(5), At::Community(0), false),
];

/// Store the market (a no-op without `gw-0001`, `rider-01` or a station: the first county has them).
pub async fn store(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    let community: Option<i64> = sqlx::query_scalar(
        r"select g.community_id from grid_assignment ga join account a on a.id = ga.account_id
            join grid g on g.id = ga.grid_id where a.name = 'gw-0001' order by g.id limit 1",
    )
    .fetch_optional(&mut **tx)
    .await?;
    let station: Option<i64> = sqlx::query_scalar("select min(id) from station").fetch_one(&mut **tx).await?;
    let (Some(community), Some(station)) = (community, station) else { return Ok(()) };
    let other: i64 = sqlx::query_scalar("select coalesce(min(id) filter (where id <> $1), $1) from community")
        .bind(community)
        .fetch_one(&mut **tx)
        .await?;
    let mut merchants = Vec::new();
    for (login, shop, _) in MERCHANTS {
        let id: i64 = sqlx::query_scalar(
            "insert into account (name, display_name, role, source) values ($1, $2, 'merchant', $3) returning id",
        )
        .bind(login)
        .bind(shop)
        .bind(SOURCE)
        .fetch_one(&mut **tx)
        .await?;
        merchants.push(id);
    }
    let mut items = Vec::new();
    for (name, kind, cost, stock, at, active) in ITEMS {
        let (merchant, station_id, community_id, place) = match at {
            At::Merchant(i) => (Some(merchants[i]), None, None, MERCHANTS[i].2),
            At::Station => (None, Some(station), None, ""),
            At::Community(0) => (None, None, Some(community), ""),
            At::Community(_) => (None, None, Some(other), ""),
        };
        let id: i64 = sqlx::query_scalar(
            r"insert into points_item (name, description, kind, cost, stock, merchant_id, station_id, community_id, place,
                                       active, source, created_by)
              values ($1, '合成演示数据', $2, $3, $4, $5, $6, $7, $8, $9, $10, 'seed') returning id",
        )
        .bind(name)
        .bind(kind)
        .bind(cost)
        .bind(stock)
        .bind(merchant)
        .bind(station_id)
        .bind(community_id)
        .bind(place)
        .bind(active)
        .bind(SOURCE)
        .fetch_one(&mut **tx)
        .await?;
        items.push(id);
    }
    store_residents(tx).await?;
    store_earnings(tx).await?;
    store_redemptions(tx, &items).await
}

/// A dozen synthetic residents (no password: they cannot log in), for the residents' ranking.
async fn store_residents(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    for k in 0..12 {
        sqlx::query("insert into account (name, display_name, role, source) values ($1, $2, 'resident', $3)")
            .bind(format!("resident-{:02}", k + 1))
            .bind(names::person(k * 7 + 3))
            .bind(SOURCE)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// This year's earnings by the rule table: riders and residents for accepted reports, the first
/// 60 grid workers for reports and a finished round, `leader-0001` for reports. Times are spread
/// over the county's year so far.
async fn store_earnings(tx: &mut Transaction<'_, Postgres>) -> anyhow::Result<()> {
    sqlx::query(
        r"with earners as (
              select a.id, a.role, e.event, e.times
                from account a
                cross join lateral (values
                    ('report_accepted', case when a.name = 'rider-01' then 24
                                              when a.role = 'rider' then 8 + a.id % 9
                                              when a.role = 'resident' then 1 + a.id % 5
                                              when a.role = 'building_leader' then 6
                                              else a.id % 4 end),
                    ('door_round_completed', case when a.role = 'grid_worker' then 1 else 0 end)) as e(event, times)
               where a.source = $1
                 and (a.role in ('rider', 'resident', 'building_leader')
                      or a.role = 'grid_worker' and a.id in (select id from account where role = 'grid_worker'
                                                             order by id limit 60))),
          year_minutes as (
              select greatest((extract(epoch from now() - (date_trunc('year', now() at time zone 'Asia/Shanghai')
                                                          at time zone 'Asia/Shanghai')) / 60)::bigint, 1) as m)
          insert into points_ledger (account_id, delta, reason, rule_id, group_code, source_kind, source_id, created_at)
          select e.id, r.points, r.event, r.id, r.group_code, 'synthetic_demo', n,
                 now() - make_interval(mins => ((e.id * 3571 + n * 1013) % y.m)::int)
            from earners e
            cross join year_minutes y
            cross join lateral generate_series(1, e.times) as n
            join points_rule r on r.event = e.event and r.active and r.group_code = gridmap_points_group_of(e.role)",
    )
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Redemptions in every state: (rider login, item index, status).
const REDEMPTIONS: [(&str, usize, &str); 9] = [
    ("rider-01", 8, "pending"),
    ("rider-01", 16, "handed_over"),
    ("rider-01", 14, "cancelled"),
    ("rider-02", 0, "handed_over"),
    ("rider-03", 11, "pending"),
    ("rider-04", 13, "pending"),
    ("rider-05", 2, "handed_over"),
    ("rider-06", 12, "pending"),
    ("rider-07", 3, "cancelled"),
];

async fn store_redemptions(tx: &mut Transaction<'_, Postgres>, items: &[i64]) -> anyhow::Result<()> {
    for (n, (login, item, status)) in REDEMPTIONS.iter().enumerate() {
        let account: Option<i64> =
            sqlx::query_scalar("select id from account where name = $1").bind(*login).fetch_optional(&mut **tx).await?;
        let Some(account) = account else { continue };
        let hours = i32::try_from(n * 5 + 2).expect("a few hours");
        let id: i64 = sqlx::query_scalar(
            r"insert into points_redemption (item_id, account_id, quantity, points, status, idempotency_key, payload_hash,
                                             handed_over_at, handed_over_by, cancelled_at, cancelled_by, cancel_reason,
                                             source, created_at)
              select i.id, $2, 1, i.cost, $3, md5('gridmap-seed-redemption-' || $4::text)::uuid,
                     sha256(convert_to('seed ' || $4::text, 'UTF8')),
                     case when $3 = 'handed_over' then now() - make_interval(hours => $5) + interval '1 hour' end,
                     case when $3 = 'handed_over' then coalesce(i.merchant_id,
                         (select id from account where role = 'station_host' and station_id = i.station_id limit 1),
                         (select min(ga.account_id) from grid_assignment ga join grid g on g.id = ga.grid_id
                           join account w on w.id = ga.account_id
                          where g.community_id = i.community_id and w.role = 'grid_worker')) end,
                     case when $3 = 'cancelled' then now() - make_interval(hours => $5) + interval '30 minutes' end,
                     case when $3 = 'cancelled' then $2 end,
                     case when $3 = 'cancelled' then '时间来不及，改天再换（合成演示）' end,
                     $6, now() - make_interval(hours => $5)
                from points_item i where i.id = $1
              returning id",
        )
        .bind(items[*item])
        .bind(account)
        .bind(*status)
        .bind(i64::try_from(n).expect("small"))
        .bind(hours)
        .bind(SOURCE)
        .fetch_one(&mut **tx)
        .await?;
        sqlx::query(
            r"insert into points_ledger (account_id, delta, reason, redemption_id, created_at)
              select account_id, -points, 'redeemed', id, created_at from points_redemption where id = $1
              union all
              select account_id, points, 'redemption_refunded', id, cancelled_at from points_redemption
               where id = $1 and status = 'cancelled'",
        )
        .bind(id)
        .execute(&mut **tx)
        .await?;
        if *status != "cancelled" {
            sqlx::query("update points_item set stock = stock - 1 where id = $1 and stock is not null")
                .bind(items[*item])
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}
