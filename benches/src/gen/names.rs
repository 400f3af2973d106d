//! Real region codes (GB/T 2260, Zhejiang) and the pieces of Chinese names.

/// A county-level division: code, name, and its prefecture-level city.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct County {
    /// 6-digit GB/T 2260 code of the county (县/区/县级市).
    pub code: &'static str,
    /// Its name.
    pub name: &'static str,
    /// 6-digit code of its city (地级市).
    pub city_code: &'static str,
    /// The city's name.
    pub city_name: &'static str,
}

const fn c(
    code: &'static str,
    name: &'static str,
    city_code: &'static str,
    city_name: &'static str,
) -> County {
    County {
        code,
        name,
        city_code,
        city_name,
    }
}

/// The counties of Zhejiang, grouped by city.
pub const COUNTIES: &[County] = &[
    c("330102", "上城区", "330100", "杭州市"),
    c("330105", "拱墅区", "330100", "杭州市"),
    c("330106", "西湖区", "330100", "杭州市"),
    c("330108", "滨江区", "330100", "杭州市"),
    c("330109", "萧山区", "330100", "杭州市"),
    c("330110", "余杭区", "330100", "杭州市"),
    c("330111", "富阳区", "330100", "杭州市"),
    c("330112", "临安区", "330100", "杭州市"),
    c("330113", "临平区", "330100", "杭州市"),
    c("330114", "钱塘区", "330100", "杭州市"),
    c("330122", "桐庐县", "330100", "杭州市"),
    c("330127", "淳安县", "330100", "杭州市"),
    c("330182", "建德市", "330100", "杭州市"),
    c("330203", "海曙区", "330200", "宁波市"),
    c("330205", "江北区", "330200", "宁波市"),
    c("330206", "北仑区", "330200", "宁波市"),
    c("330211", "镇海区", "330200", "宁波市"),
    c("330212", "鄞州区", "330200", "宁波市"),
    c("330213", "奉化区", "330200", "宁波市"),
    c("330225", "象山县", "330200", "宁波市"),
    c("330226", "宁海县", "330200", "宁波市"),
    c("330281", "余姚市", "330200", "宁波市"),
    c("330282", "慈溪市", "330200", "宁波市"),
    c("330302", "鹿城区", "330300", "温州市"),
    c("330303", "龙湾区", "330300", "温州市"),
    c("330304", "瓯海区", "330300", "温州市"),
    c("330305", "洞头区", "330300", "温州市"),
    c("330324", "永嘉县", "330300", "温州市"),
    c("330326", "平阳县", "330300", "温州市"),
    c("330327", "苍南县", "330300", "温州市"),
    c("330328", "文成县", "330300", "温州市"),
    c("330329", "泰顺县", "330300", "温州市"),
    c("330381", "瑞安市", "330300", "温州市"),
    c("330382", "乐清市", "330300", "温州市"),
    c("330383", "龙港市", "330300", "温州市"),
    c("330402", "南湖区", "330400", "嘉兴市"),
    c("330411", "秀洲区", "330400", "嘉兴市"),
    c("330421", "嘉善县", "330400", "嘉兴市"),
    c("330424", "海盐县", "330400", "嘉兴市"),
    c("330481", "海宁市", "330400", "嘉兴市"),
    c("330482", "平湖市", "330400", "嘉兴市"),
    c("330483", "桐乡市", "330400", "嘉兴市"),
    c("330502", "吴兴区", "330500", "湖州市"),
    c("330503", "南浔区", "330500", "湖州市"),
    c("330521", "德清县", "330500", "湖州市"),
    c("330522", "长兴县", "330500", "湖州市"),
    c("330523", "安吉县", "330500", "湖州市"),
    c("330602", "越城区", "330600", "绍兴市"),
    c("330603", "柯桥区", "330600", "绍兴市"),
    c("330604", "上虞区", "330600", "绍兴市"),
    c("330624", "新昌县", "330600", "绍兴市"),
    c("330681", "诸暨市", "330600", "绍兴市"),
    c("330683", "嵊州市", "330600", "绍兴市"),
    c("330702", "婺城区", "330700", "金华市"),
    c("330703", "金东区", "330700", "金华市"),
    c("330723", "武义县", "330700", "金华市"),
    c("330726", "浦江县", "330700", "金华市"),
    c("330727", "磐安县", "330700", "金华市"),
    c("330781", "兰溪市", "330700", "金华市"),
    c("330782", "义乌市", "330700", "金华市"),
    c("330783", "东阳市", "330700", "金华市"),
    c("330784", "永康市", "330700", "金华市"),
    c("330802", "柯城区", "330800", "衢州市"),
    c("330803", "衢江区", "330800", "衢州市"),
    c("330822", "常山县", "330800", "衢州市"),
    c("330824", "开化县", "330800", "衢州市"),
    c("330825", "龙游县", "330800", "衢州市"),
    c("330881", "江山市", "330800", "衢州市"),
    c("330902", "定海区", "330900", "舟山市"),
    c("330903", "普陀区", "330900", "舟山市"),
    c("330921", "岱山县", "330900", "舟山市"),
    c("330922", "嵊泗县", "330900", "舟山市"),
    c("331002", "椒江区", "331000", "台州市"),
    c("331003", "黄岩区", "331000", "台州市"),
    c("331004", "路桥区", "331000", "台州市"),
    c("331022", "三门县", "331000", "台州市"),
    c("331023", "天台县", "331000", "台州市"),
    c("331024", "仙居县", "331000", "台州市"),
    c("331081", "温岭市", "331000", "台州市"),
    c("331082", "临海市", "331000", "台州市"),
    c("331083", "玉环市", "331000", "台州市"),
    c("331102", "莲都区", "331100", "丽水市"),
    c("331121", "青田县", "331100", "丽水市"),
    c("331122", "缙云县", "331100", "丽水市"),
    c("331123", "遂昌县", "331100", "丽水市"),
    c("331124", "松阳县", "331100", "丽水市"),
    c("331125", "云和县", "331100", "丽水市"),
    c("331126", "庆元县", "331100", "丽水市"),
    c("331127", "景宁畲族自治县", "331100", "丽水市"),
    c("331181", "龙泉市", "331100", "丽水市"),
];

/// The first `n` counties to use: 瑞安市 (330381, whose bureau published the
/// rules) first, then one county of each city in turn, so that a few
/// counties already span several cities.
pub fn pick_counties(n: usize) -> Vec<County> {
    let first = COUNTIES
        .iter()
        .position(|c| c.code == "330381")
        .unwrap_or(0);
    let mut cities: Vec<Vec<County>> = Vec::new();
    for (i, c) in COUNTIES.iter().enumerate() {
        if i == first {
            continue;
        }
        match cities.iter_mut().find(|g| g[0].city_code == c.city_code) {
            Some(g) => g.push(*c),
            None => cities.push(vec![*c]),
        }
    }
    // Start the rotation after 温州 so that the second county is elsewhere.
    let start = cities
        .iter()
        .position(|g| g[0].city_code == COUNTIES[first].city_code)
        .map_or(0, |i| i + 1);
    let mut out = vec![COUNTIES[first]];
    let mut round = 0;
    while out.len() < n.min(COUNTIES.len()) {
        for k in 0..cities.len() {
            let g = &cities[(start + k) % cities.len()];
            if let Some(c) = g.get(round)
                && out.len() < n
            {
                out.push(*c);
            }
        }
        round += 1;
    }
    out
}

/// The short form of a county name (瑞安市 → 瑞安), as used in school names.
pub fn short_name(county: &str) -> &str {
    let n = county.chars().count();
    if county.contains("自治") {
        // 景宁畲族自治县 → 景宁
        let end = county
            .char_indices()
            .nth(2)
            .map_or(county.len(), |(i, _)| i);
        return &county[..end];
    }
    if n > 2 {
        let last = county.chars().last().map_or(0, char::len_utf8);
        &county[..county.len() - last]
    } else {
        county
    }
}

/// Town names used to tell schools of one county apart.
pub const TOWNS: &[&str] = &[
    "城关",
    "东山",
    "塘下",
    "飞云",
    "莘塍",
    "马屿",
    "仙降",
    "陶山",
    "湖岭",
    "高楼",
    "桐浦",
    "安阳",
    "玉海",
    "锦湖",
    "南滨",
    "汀田",
    "上望",
    "潘岱",
    "云周",
    "曹村",
    "林川",
    "平阳坑",
    "北麂",
    "芳庄",
    "枫岭",
    "龙湖",
    "新华",
    "西门",
    "南门",
    "江滨",
];

/// Kinds of school, with the stage their students are registered under.
pub const SCHOOL_KINDS: &[(&str, Stage)] = &[
    ("中心小学", Stage::Primary),
    ("实验小学", Stage::Primary),
    ("第一小学", Stage::Primary),
    ("第二小学", Stage::Primary),
    ("小学", Stage::Primary),
    ("初级中学", Stage::Junior),
    ("实验中学", Stage::Junior),
    ("外国语学校", Stage::Junior),
    ("高级中学", Stage::Senior),
    ("第一中学", Stage::Senior),
];

/// A school stage, as the optional `stage` of a `register` event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stage {
    /// 小学
    Primary,
    /// 初中
    Junior,
    /// 高中
    Senior,
}

impl Stage {
    /// The wire value.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Primary => "primary",
            Stage::Junior => "junior",
            Stage::Senior => "senior",
        }
    }
}

/// Common Chinese surnames.
pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "高", "罗", "郑", "梁", "谢", "宋", "唐", "许", "邓", "冯", "韩", "曹", "潘", "蔡",
    "金", "叶", "余", "池", "缪", "项", "董", "戴",
];

/// Characters of given names.
pub const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明",
    "超", "霞", "平", "刚", "燕", "华", "慧", "建", "文", "晓", "雪", "婷", "琳", "宇", "浩", "鑫",
    "佳", "欣", "晨", "颖", "志", "海", "红", "英",
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counties_are_unique_real_codes() {
        let mut codes: Vec<_> = COUNTIES.iter().map(|c| c.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), COUNTIES.len());
        for c in COUNTIES {
            assert_eq!(c.code.len(), 6);
            assert!(c.code.starts_with("33"));
            assert_eq!(&c.code[..4], &c.city_code[..4]);
        }
    }

    #[test]
    fn picks_spread_over_cities() {
        let p = pick_counties(3);
        assert_eq!(p[0].code, "330381");
        assert_ne!(p[1].city_code, p[0].city_code);
        assert_ne!(p[2].city_code, p[1].city_code);
        let all = pick_counties(COUNTIES.len());
        assert_eq!(all.len(), COUNTIES.len());
        let mut codes: Vec<_> = all.iter().map(|c| c.code).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), COUNTIES.len());
        assert_eq!(short_name("瑞安市"), "瑞安");
        assert_eq!(short_name("景宁畲族自治县"), "景宁");
    }
}
