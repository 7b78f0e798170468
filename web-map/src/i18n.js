// Every user-visible string, in zh-CN (the default) and English. A missing English entry falls
// back to Chinese, so a new string never shows up as a raw key.
const strings = {
  'zh-CN': {
    title: '沂源县城网格地图',
    lang_toggle: 'EN',
    loading: '加载中…',
    tab_stations: '驿站',
    tab_nearest: '附近',
    tab_grid: '我的网格',
    tab_report: '骑手上报',
    search_placeholder: '搜索驿站名称、地址或服务（如“充电”）',
    stations_count: (n) => `共 ${n} 个暖“新”驿站`,
    no_match: '没有匹配的驿站',
    open_now: '正在营业',
    closed_now: '已休息',
    hours_unknown: '营业时间未知',
    open_24_7: '全天 24 小时',
    address: '地址',
    hours: '开放时间',
    services: '服务',
    host: '主办单位',
    phone: '服务电话',
    back: '返回列表',
    show_on_map: '在地图上查看',
    nearest_hint: '点击“我的位置”，或在地图上点一下，查看最近的驿站。',
    use_my_location: '我的位置',
    locating: '正在定位…',
    geo_denied: '无法获取位置（未授权或不可用）。请在地图上点选位置。',
    nearest_from: (lon, lat) => `距离 ${lat.toFixed(5)}, ${lon.toFixed(5)} 最近的驿站：`,
    metres: (m) => (m < 1000 ? `${Math.round(m)} 米` : `${(m / 1000).toFixed(1)} 公里`),
    grid_hint: '在地图上点一下（或点“我的位置”），查看所在网格和网格员。',
    grid_none: '此处不在县城网格范围内。',
    grid_code: '网格编号',
    community: '社区',
    subdistrict: '街道',
    households: '住户',
    households_n: (n) => `${n} 户`,
    workers: '网格员',
    no_workers: '暂无公示网格员',
    phone_unpublished: '电话未公示，可到社区党群服务中心联系',
    map_no_style: '底图瓦片服务暂不可用，仅显示驿站位置。',
    map_error: '地图出错：',
    api_error: '服务暂不可用：',
    offline: '当前离线',
    // Rider view
    login_title: '骑手登录',
    login_name: '账号',
    login_password: '密码',
    login_button: '登录',
    logout: '退出登录',
    logged_in_as: (n) => `已登录：${n}`,
    login_failed: '账号或密码错误',
    reports_unavailable: '上报服务尚未开通（服务器未提供 /api/auth/login）。已保存的上报会在服务开通后发送。',
    report_title: '上报问题',
    category: '类别',
    choose_category: '请选择类别',
    description: '问题描述',
    description_placeholder: '例如：井盖破损，位于路口东侧',
    location: '位置',
    use_gps: '用 GPS 定位',
    use_pin: '拖动地图上的图钉',
    accuracy: (m) => `精度约 ${Math.round(m)} 米`,
    accuracy_poor: '精度较差（超过 100 米），建议拖动图钉校正',
    no_location: '尚未选择位置',
    photos: '照片（最多 3 张）',
    photos_too_many: '最多 3 张照片',
    submit: '提交上报',
    queued: '已保存，待发送',
    sending: '发送中…',
    sent: (id) => `已送达（编号 ${id}）`,
    assigned: (g) => `已分派到网格：${g}`,
    send_failed: '发送失败：',
    pending_title: '待发送的上报',
    pending_none: '没有待发送的上报',
    pending_state_pending: '等待网络',
    pending_state_failed: '被拒绝',
    my_reports: '我的上报',
    points: (n) => `积分：${n}`,
    dup_title: '附近已有同类上报，可能是同一问题：',
    dup_continue: '仍然提交',
    dup_cancel: '取消',
    need_category: '请选择类别',
    need_description: '请填写问题描述',
    need_location: '请先确定位置',
    retry_now: '立即重试',
    remove: '删除',
    status: '状态',
  },
  en: {
    title: 'Yiyuan grid map',
    lang_toggle: '中文',
    loading: 'Loading…',
    tab_stations: 'Stations',
    tab_nearest: 'Nearby',
    tab_grid: 'My grid',
    tab_report: 'Rider report',
    search_placeholder: 'Search stations by name, address or service (e.g. "charging")',
    stations_count: (n) => `${n} warm stations`,
    no_match: 'No matching station',
    open_now: 'Open now',
    closed_now: 'Closed',
    hours_unknown: 'Hours unknown',
    open_24_7: 'Open 24 hours',
    address: 'Address',
    hours: 'Hours',
    services: 'Services',
    host: 'Host',
    phone: 'Phone',
    back: 'Back to list',
    show_on_map: 'Show on map',
    nearest_hint: 'Tap "My location" or tap the map to see the nearest stations.',
    use_my_location: 'My location',
    locating: 'Locating…',
    geo_denied: 'Location unavailable (denied or unsupported). Tap the map instead.',
    nearest_from: (lon, lat) => `Nearest stations to ${lat.toFixed(5)}, ${lon.toFixed(5)}:`,
    metres: (m) => (m < 1000 ? `${Math.round(m)} m` : `${(m / 1000).toFixed(1)} km`),
    grid_hint: 'Tap the map (or "My location") to see your grid and its grid workers.',
    grid_none: 'No county grid covers this place.',
    grid_code: 'Grid code',
    community: 'Community',
    subdistrict: 'Subdistrict',
    households: 'Households',
    households_n: (n) => `${n} households`,
    workers: 'Grid workers',
    no_workers: 'No published grid worker',
    phone_unpublished: 'Phone not published; ask at the community service centre',
    map_no_style: 'Map tiles are unavailable; showing stations only.',
    map_error: 'Map error: ',
    api_error: 'Service unavailable: ',
    offline: 'Offline',
    login_title: 'Rider login',
    login_name: 'Account',
    login_password: 'Password',
    login_button: 'Log in',
    logout: 'Log out',
    logged_in_as: (n) => `Logged in: ${n}`,
    login_failed: 'Wrong account or password',
    reports_unavailable: 'Reporting is not available yet (no /api/auth/login on this server). Saved reports will be sent once it is.',
    report_title: 'Report a problem',
    category: 'Category',
    choose_category: 'Choose a category',
    description: 'Description',
    description_placeholder: 'e.g. broken manhole cover, east side of the crossing',
    location: 'Location',
    use_gps: 'Use GPS',
    use_pin: 'Drag the pin on the map',
    accuracy: (m) => `Accuracy about ${Math.round(m)} m`,
    accuracy_poor: 'Poor accuracy (over 100 m); drag the pin to correct it',
    no_location: 'No location yet',
    photos: 'Photos (up to 3)',
    photos_too_many: 'At most 3 photos',
    submit: 'Send report',
    queued: 'Saved, waiting to send',
    sending: 'Sending…',
    sent: (id) => `Delivered (no. ${id})`,
    assigned: (g) => `Assigned to grid: ${g}`,
    send_failed: 'Sending failed: ',
    pending_title: 'Reports waiting to be sent',
    pending_none: 'Nothing waiting',
    pending_state_pending: 'waiting for network',
    pending_state_failed: 'rejected',
    my_reports: 'My reports',
    points: (n) => `Points: ${n}`,
    dup_title: 'Similar open reports nearby may be the same problem:',
    dup_continue: 'Send anyway',
    dup_cancel: 'Cancel',
    need_category: 'Choose a category',
    need_description: 'Describe the problem',
    need_location: 'Set the location first',
    retry_now: 'Retry now',
    remove: 'Remove',
    status: 'Status',
  },
};

// Station service codes (the schema's allow-list) with an icon and a label per language.
export const SERVICES = {
  rest: { icon: '🛋', 'zh-CN': '休息', en: 'Rest' },
  water: { icon: '💧', 'zh-CN': '饮水', en: 'Water' },
  charging: { icon: '🔋', 'zh-CN': '充电', en: 'Charging' },
  microwave: { icon: '🍱', 'zh-CN': '微波炉', en: 'Microwave' },
  toilet: { icon: '🚻', 'zh-CN': '卫生间', en: 'Toilet' },
  first_aid: { icon: '➕', 'zh-CN': '急救药箱', en: 'First aid' },
  policy_advice: { icon: '📄', 'zh-CN': '政策咨询', en: 'Policy advice' },
  repair: { icon: '🔧', 'zh-CN': '维修工具', en: 'Repair tools' },
  umbrella: { icon: '☂', 'zh-CN': '爱心雨伞', en: 'Umbrella' },
  wifi: { icon: '📶', 'zh-CN': '无线网络', en: 'Wi-Fi' },
  reading: { icon: '📚', 'zh-CN': '阅读', en: 'Reading' },
  legal_aid: { icon: '⚖', 'zh-CN': '法律援助', en: 'Legal aid' },
};

const stored = (() => { try { return localStorage.getItem('gridmap.lang'); } catch { return null; } })();
let lang = stored === 'en' ? 'en' : 'zh-CN';

export function getLang() { return lang; }

export function setLang(next) {
  lang = next === 'en' ? 'en' : 'zh-CN';
  try { localStorage.setItem('gridmap.lang', lang); } catch { /* private mode: not remembered */ }
  document.documentElement.lang = lang;
}

/** The string for `key` in the current language; functions are called with `args`. */
export function t(key, ...args) {
  const entry = strings[lang][key] ?? strings['zh-CN'][key];
  if (entry === undefined) return key;
  return typeof entry === 'function' ? entry(...args) : entry;
}

export function serviceLabel(code) {
  const s = SERVICES[code];
  return s ? s[lang] : code;
}

/** Every language's label for a service, so a search in either language finds it. */
export function serviceSearchText(code) {
  const s = SERVICES[code];
  return s ? `${code} ${s['zh-CN']} ${s.en}` : code;
}

/** Replace the text of every element carrying `data-i18n` (and placeholders/titles). */
export function applyStatic(root = document) {
  for (const el of root.querySelectorAll('[data-i18n]')) el.textContent = t(el.dataset.i18n);
  for (const el of root.querySelectorAll('[data-i18n-placeholder]')) el.placeholder = t(el.dataset.i18nPlaceholder);
  for (const el of root.querySelectorAll('[data-i18n-aria]')) el.setAttribute('aria-label', t(el.dataset.i18nAria));
}
