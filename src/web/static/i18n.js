// Words of the console in both languages. The language follows the browser's until the switch is used.
const WORDS = {
  en: {
    title: 'meterd console',
    signIn: 'Sign in',
    signOut: 'Sign out',
    user: 'User name',
    password: 'Password',
    noUsers: 'No console user exists yet. On the gateway run: meterd user add NAME --role admin',
    overview: 'Overview',
    meters: 'Meters',
    alerts: 'Alerts',
    users: 'Users',
    broker: 'Broker',
    connected: 'connected',
    disconnected: 'DISCONNECTED',
    buses: 'Buses',
    busy: 'busy',
    queued: 'queued',
    outbox: 'Outbox backlog',
    oldest: 'oldest',
    deadLetters: 'dead letters',
    online: 'online',
    offline: 'offline',
    unreachable: 'unreachable',
    activeAlerts: 'Active alerts',
    salesToday: "Today's sales",
    loads: 'loads',
    search: 'Search id, customer, bus…',
    meter: 'Meter',
    customer: 'Customer',
    bus: 'Bus',
    balance: 'Balance',
    relay: 'Relay',
    lastRead: 'Last good read',
    closed: 'closed (on)',
    open: 'OPEN (cut)',
    unknown: 'unknown',
    never: 'never',
    topup: 'Top up',
    amount: 'Amount',
    yuan: 'yuan',
    kwh: 'kWh',
    trip: 'Trip (cut supply)',
    close: 'Close (restore supply)',
    readNow: 'Read now',
    timeSync: 'Time sync',
    reason: 'Reason',
    reasonHint: 'Why? (kept with the command)',
    confirm: 'Confirm',
    cancel: 'Cancel',
    confirmTopup: 'Load {amount} onto {meter}?',
    confirmTrip: 'Cut the supply of {meter}?',
    confirmClose: 'Restore the supply of {meter}?',
    done: 'Done',
    running: 'Still running: the result will show in the ledger and the meter state.',
    ledger: 'Ledger',
    time: 'Time',
    channel: 'Channel',
    kind: 'Kind',
    state: 'State',
    operator: 'Operator',
    count: 'Purchase #',
    charts: 'Last 7 days',
    energy: 'Energy register (kWh)',
    balanceChart: 'Balance',
    voltage: 'Voltage (V)',
    noReadings: 'No readings in this period.',
    notAllowed: 'Your role may not do this.',
    active: 'Active',
    history: 'History',
    raised: 'Raised',
    cleared: 'Cleared',
    severity: 'Severity',
    ack: 'Acknowledge',
    note: 'Repair note',
    role: 'Role',
    add: 'Add',
    remove: 'Remove',
    back: '← Meters',
    loading: 'Loading…',
    lost: 'Live updates interrupted; reconnecting…',
    nothing: 'Nothing here.',
  },
  zh: {
    title: 'meterd 控制台',
    signIn: '登录',
    signOut: '退出',
    user: '用户名',
    password: '密码',
    noUsers: '尚无控制台用户。请在网关上执行：meterd user add 名字 --role admin',
    overview: '概览',
    meters: '电表',
    alerts: '告警',
    users: '用户',
    broker: '主站连接',
    connected: '已连接',
    disconnected: '已断开',
    buses: '总线',
    busy: '占用',
    queued: '排队',
    outbox: '待上送',
    oldest: '最早',
    deadLetters: '死信',
    online: '在线',
    offline: '离线',
    unreachable: '不可达',
    activeAlerts: '未处理告警',
    salesToday: '今日售电',
    loads: '笔',
    search: '搜索表号、户号、总线…',
    meter: '电表',
    customer: '户号',
    bus: '总线',
    balance: '余额',
    relay: '继电器',
    lastRead: '最近抄表',
    closed: '合闸（供电）',
    open: '跳闸（断电）',
    unknown: '未知',
    never: '从未',
    topup: '充值',
    amount: '金额',
    yuan: '元',
    kwh: '千瓦时',
    trip: '跳闸（断电）',
    close: '合闸（复电）',
    readNow: '立即抄表',
    timeSync: '校时',
    reason: '原因',
    reasonHint: '原因（随命令记录）',
    confirm: '确认',
    cancel: '取消',
    confirmTopup: '为 {meter} 充值 {amount}？',
    confirmTrip: '确认对 {meter} 断电？',
    confirmClose: '确认对 {meter} 复电？',
    done: '完成',
    running: '仍在执行：结果将显示在台账和电表状态中。',
    ledger: '充值台账',
    time: '时间',
    channel: '渠道',
    kind: '类型',
    state: '状态',
    operator: '操作员',
    count: '购电次数',
    charts: '最近 7 天',
    energy: '电能示值（千瓦时）',
    balanceChart: '余额',
    voltage: '电压（伏）',
    noReadings: '此期间无抄表数据。',
    notAllowed: '您的角色无此权限。',
    active: '未处理',
    history: '历史',
    raised: '发生',
    cleared: '清除',
    severity: '级别',
    ack: '确认处理',
    note: '维修记录',
    role: '角色',
    add: '添加',
    remove: '删除',
    back: '← 电表',
    loading: '加载中…',
    lost: '实时更新中断，正在重连…',
    nothing: '暂无内容。',
  },
};

let lang = localStorage.getItem('meterd.lang') ?? (navigator.language?.toLowerCase().startsWith('zh') ? 'zh' : 'en');
let timeZone = 'UTC';

export function getLang() {
  return lang;
}

export function setLang(next) {
  lang = next;
  localStorage.setItem('meterd.lang', next);
  document.documentElement.lang = next === 'zh' ? 'zh-CN' : 'en';
}

export function gatewayTimeZone() {
  return timeZone;
}

export function setTimeZone(tz) {
  timeZone = tz;
}

/** The word for `key`, with `{name}` filled from `vars`. */
export function t(key, vars = {}) {
  const s = WORDS[lang]?.[key] ?? WORDS.en[key] ?? key;
  return s.replace(/\{(\w+)\}/g, (_, k) => String(vars[k] ?? ''));
}

/** Two decimals, always: yuan and kWh at the counter. */
export function two(n) {
  return typeof n === 'number' && Number.isFinite(n) ? n.toFixed(2) : '—';
}

export function yuan(n) {
  return `${two(n)} ${t('yuan')}`;
}

export function kwh(n) {
  return `${two(n)} ${t('kwh')}`;
}

/** A ledger amount: fen for money, 0.01 kWh for energy. */
export function ledgerAmount(unit, amount) {
  return unit === 'money' ? yuan(amount / 100) : kwh(amount / 100);
}

/** A time in the gateway's time zone. */
export function when(ms) {
  if (ms === null || ms === undefined) return t('never');
  return new Intl.DateTimeFormat(lang === 'zh' ? 'zh-CN' : 'en-GB', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
    hour12: false,
  }).format(new Date(ms));
}

/** A meter's balance as the counter reads it. */
export function balanceText(b) {
  if (!b) return '—';
  if (typeof b.moneyYuan === 'number') return yuan(b.moneyYuan);
  if (typeof b.energyKwh === 'number') return kwh(b.energyKwh);
  return '—';
}
