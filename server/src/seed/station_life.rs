//! The demo's station life (issue 23 §3): a host per station (`host-01`…, linked to it), about
//! 2,260 check-ins per county over the past year — the county reports 2,200+ visits across its
//! 48 stations — plus a few in the last 24 hours so the busy-ness hints differ, and suggestions
//! in the stations' boxes and the county's, most of them answered. Synthetic and deterministic
//! (a fixed seed per county; times are counted back from the moment of seeding), labelled
//! `source = 'synthetic-demo'`.

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlx::{Postgres, Transaction};

use super::SOURCE;

/// Check-ins before the last 24 hours, per county; with those of the last day (about 5 a
/// station) a county has about 2,300.
pub const VISITS_PER_COUNTY: usize = 2_050;
const SEED: u64 = 0x57A7_1015;

const SUGGESTIONS: [&str; 12] = [
    "希望驿站晚上能开到十点，夜班骑手也能歇歇脚。",
    "微波炉排队时间长，建议再添一台。",
    "充电插座不够用，高峰时总要等。",
    "驿站门口电动车停放位置太少，希望划出停车区。",
    "饮水机的热水不太热，麻烦检查一下。",
    "建议放一些雨衣、雨伞供临时借用。",
    "能否增加法律咨询的时间？想了解劳动合同的问题。",
    "夏天希望提供藿香正气水等防暑药品。",
    "卫生间晚上没有灯，希望修一下。",
    "希望驿站能提供手机快充线（Type-C）。",
    "建议在地图上标出驿站的开放时间，跑单时好找。",
    "感谢驿站，冬天能进来暖和一下，希望继续坚持。",
];

const ANSWERS: [&str; 6] = [
    "感谢建议，已经安排落实，欢迎继续监督。",
    "已反映给主办单位，下周起试行延长开放时间。",
    "已维修完毕，感谢提醒！",
    "已增加设备，高峰期请按顺序使用。",
    "已联系社区律师，每周三下午在驿站值班。",
    "谢谢您的肯定，我们会继续做好服务。",
];

/// Hosts, visits and suggestions for one county's stations (`station_ids` in the county's
/// station order, `rider_ids` its riders); `first_host` numbers the host logins on from the
/// previous counties'.
pub async fn store(
    tx: &mut Transaction<'_, Postgres>,
    county: u32,
    station_ids: &[i64],
    rider_ids: &[i64],
    first_host: usize,
) -> anyhow::Result<()> {
    if station_ids.is_empty() || rider_ids.is_empty() {
        return Ok(());
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED + u64::from(county));
    // Identity values follow the insert's order, so sorted ids are in station order.
    let mut host_ids: Vec<i64> = sqlx::query_scalar(
        r"insert into account (name, display_name, role, station_id, source)
          select l, d, 'station_host', s, $4 from unnest($1::text[], $2::text[], $3::bigint[]) with ordinality as t(l, d, s, o)
          order by o
          returning id",
    )
    .bind((0..station_ids.len()).map(|k| format!("host-{:02}", first_host + k + 1)).collect::<Vec<_>>())
    .bind((0..station_ids.len()).map(|k| format!("驿站站长{:02}", first_host + k + 1)).collect::<Vec<_>>())
    .bind(station_ids)
    .bind(SOURCE)
    .fetch_all(&mut **tx)
    .await?;
    host_ids.sort_unstable();

    // Visits: each station draws a popularity; the year's check-ins are shared by it, more of
    // them in recent months (the stations became known), at meal-time peaks of the county's day.
    let weights: Vec<f64> = station_ids.iter().map(|_| 0.3 + rng.random::<f64>() * 1.7).collect();
    let total: f64 = weights.iter().sum();
    let (mut v_station, mut v_rider, mut v_minutes_ago, mut v_distance, mut v_accuracy) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (i, &station) in station_ids.iter().enumerate() {
        let n = (VISITS_PER_COUNTY as f64 * weights[i] / total).round() as usize;
        // Minutes before the moment of seeding: the last 24 hours first (the busy-ness hint),
        // then the year, one visit a day at most per draw.
        let recent = [0, 1, 2, 3, 4, 5, 6, 8, 9, 11][rng.random_range(0..10)];
        let mut ago: Vec<i64> = (0..recent).map(|_| rng.random_range(5..24 * 60)).collect();
        for _ in 0..n {
            let day = (365.0 * rng.random::<f64>().powf(1.4)).ceil().max(1.0) as i64;
            let minute = if rng.random_bool(0.55) { rng.random_range(630..810) } else { rng.random_range(1020..1200) };
            // Back `day` days, at `minute` of that day (approximately local: UTC+8 is 480).
            ago.push(day * 24 * 60 + (24 * 60 - minute));
        }
        ago.sort_unstable();
        ago.dedup();
        // Riders take turns: the same rider returns to a station only every `rider_ids.len()`
        // visits; one within the hour of their previous visit here is dropped (the real rule).
        let offset = rng.random_range(0..rider_ids.len());
        let mut last: std::collections::HashMap<usize, i64> = std::collections::HashMap::new();
        for (k, minutes) in ago.into_iter().enumerate() {
            let r = (offset + k) % rider_ids.len();
            if last.get(&r).is_some_and(|prev| (minutes - prev).abs() < 61) {
                continue;
            }
            last.insert(r, minutes);
            v_station.push(station);
            v_rider.push(rider_ids[r]);
            v_minutes_ago.push(minutes);
            v_distance.push(rng.random_range(4.0..140.0_f32));
            v_accuracy.push(rng.random_range(4.0..35.0_f32));
        }
    }
    sqlx::query(
        r"insert into station_visit (station_id, account_id, visited_at, counted_until, distance_m, accuracy_m, source)
          select s, a, t, t + interval '1 hour', d, acc, $6
            from (select s, a, now() - make_interval(mins => m::int) as t, d, acc
                    from unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::real[], $5::real[]) as u(s, a, m, d, acc)) v",
    )
    .bind(&v_station)
    .bind(&v_rider)
    .bind(&v_minutes_ago)
    .bind(&v_distance)
    .bind(&v_accuracy)
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;

    // Suggestions: about one per station and a dozen in the county's box; older ones answered.
    let (mut g_station, mut g_author, mut g_body, mut g_days, mut g_answer, mut g_answered_by) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let boxes = station_ids.len() + 12;
    for k in 0..boxes + station_ids.len() / 4 {
        let at_station = (k < boxes - 12 || k >= boxes).then(|| rng.random_range(0..station_ids.len()));
        let days = rng.random_range(1..180_i64);
        let answered = days > 3 && rng.random_bool(0.75);
        g_station.push(at_station.map(|i| station_ids[i]));
        g_author.push(rider_ids[rng.random_range(0..rider_ids.len())]);
        g_body.push(SUGGESTIONS[rng.random_range(0..SUGGESTIONS.len())]);
        g_days.push(days);
        g_answer.push(answered.then(|| ANSWERS[rng.random_range(0..ANSWERS.len())]));
        g_answered_by.push(if answered { at_station.map(|i| host_ids[i]) } else { None });
    }
    sqlx::query(
        r"insert into station_suggestion (station_id, account_id, body, created_at, answer, answered_at, answered_by, source)
          select s, a, b, now() - make_interval(days => d::int), ans,
                 case when ans is not null then now() - make_interval(days => d::int) + interval '2 days' end, by_, $7
            from unnest($1::bigint[], $2::bigint[], $3::text[], $4::bigint[], $5::text[], $6::bigint[]) as u(s, a, b, d, ans, by_)",
    )
    .bind(&g_station)
    .bind(&g_author)
    .bind(&g_body)
    .bind(&g_days)
    .bind(&g_answer)
    .bind(&g_answered_by)
    .bind(SOURCE)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
