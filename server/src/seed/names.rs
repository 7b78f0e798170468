//! Word lists for the synthetic demo city. Every name made from them is fictional.

pub const SURNAMES: [&str; 40] = [
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "胡", "朱", "高", "林", "何", "郭", "马",
    "罗", "梁", "宋", "郑", "谢", "韩", "唐", "冯", "于", "董", "萧", "程", "曹", "袁", "邓", "许", "傅", "沈", "曾",
    "彭", "吕",
];

pub const GIVEN: [&str; 48] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超", "秀英", "霞",
    "平", "刚", "桂英", "建华", "文", "华", "红", "玉兰", "志强", "海燕", "建国", "丹", "鹏", "宁", "斌", "晶", "春梅",
    "亮", "婷", "雪", "凯", "峰", "浩", "欣", "琳", "慧", "晓东", "国庆", "德明",
];

/// Community (社区) names, used in order; a second round gets a numeral.
pub const COMMUNITIES: [&str; 40] = [
    "城北",
    "城南",
    "东关",
    "西关",
    "胜利",
    "振兴",
    "鲁山",
    "螳螂河",
    "沂河",
    "荆山",
    "历山",
    "南麻",
    "新城",
    "凤凰",
    "金桥",
    "东风",
    "芙蓉",
    "青年",
    "健康",
    "富源",
    "瑞阳",
    "儒林",
    "光明",
    "和平",
    "红旗",
    "新华",
    "文化",
    "朝阳",
    "太平",
    "张家坡",
    "沂蒙",
    "中心",
    "惠民",
    "春晖",
    "恒丰",
    "安康",
    "幸福",
    "望峰",
    "锦绣",
    "花园",
];

/// Road names: main roads first.
pub const ROADS: [&str; 36] = [
    "鲁山路",
    "胜利路",
    "振兴路",
    "荆山路",
    "沂河路",
    "螳螂河路",
    "历山路",
    "新城路",
    "瑞阳路",
    "城东路",
    "健康路",
    "人民路",
    "中心路",
    "文化路",
    "儒林路",
    "凤凰路",
    "沂蒙路",
    "建设路",
    "博沂路",
    "城西路",
    "太平路",
    "花园路",
    "富源路",
    "青年路",
    "和平路",
    "东风路",
    "朝阳路",
    "光明路",
    "金桥路",
    "惠民路",
    "春晖路",
    "幸福路",
    "锦绣路",
    "恒丰路",
    "望峰路",
    "安康路",
];

pub const STATION_HOSTS: [&str; 12] = [
    "沂源县总工会",
    "历山街道党工委",
    "南麻街道党工委",
    "沂源县邮政分公司",
    "顺丰速运沂源营业部",
    "中通快递沂源分部",
    "美团外卖沂源站点",
    "饿了么沂源站点",
    "沂源农商银行",
    "沂源县交通运输局",
    "中国石化沂源加油站",
    "社区党群服务中心",
];

/// OSM `opening_hours` syntax, so a client can tell whether a station is open now.
pub const STATION_HOURS: [&str; 5] =
    ["24/7", "Mo-Su 08:00-20:00", "Mo-Su 07:30-21:00", "Mo-Su 09:00-18:00", "Mo-Su 06:30-22:00"];

/// What a station offers; rest, water and charging everywhere, the rest by chance.
pub const STATION_EXTRA_SERVICES: [&str; 9] =
    ["microwave", "toilet", "first_aid", "policy_advice", "repair", "umbrella", "wifi", "reading", "legal_aid"];

pub const PUBLIC_BUILDINGS: [&str; 8] =
    ["社区卫生服务站", "小学", "幼儿园", "党群服务中心", "老年活动中心", "文化站", "派出所", "菜市场"];

/// A two- or three-character Chinese name.
pub fn person(k: usize) -> String {
    let surname = SURNAMES[k % SURNAMES.len()];
    let given = GIVEN[(k / SURNAMES.len() + k * 7) % GIVEN.len()];
    format!("{surname}{given}")
}

pub fn community(k: usize) -> String {
    let base = COMMUNITIES[k % COMMUNITIES.len()];
    match k / COMMUNITIES.len() {
        0 => format!("{base}社区"),
        round => format!("{base}{}社区", round + 1),
    }
}

pub fn road(k: usize) -> String {
    let base = ROADS[k % ROADS.len()];
    match k / ROADS.len() {
        0 => base.to_string(),
        round => format!("{}{}{}", &base[..base.len() - "路".len()], round + 1, "路"),
    }
}
