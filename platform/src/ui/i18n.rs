//! The UI's two languages: Simplified Chinese (the default) and English, from one message
//! table; templates call `t("key")` and never hold text of their own.

use crate::catalog::Industry;

/// A UI language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    /// Simplified Chinese, the default.
    ZhCn,
    /// English.
    En,
}

impl Lang {
    /// The language's tag, as in `lang="..."` and the language cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::ZhCn => "zh-CN",
            Lang::En => "en",
        }
    }

    /// The language with this tag, if it is one of ours.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        [Lang::ZhCn, Lang::En].into_iter().find(|l| l.tag() == tag)
    }

    /// The message `key` in this language; the key itself if the table lacks it.
    pub fn text(self, key: &str) -> &str {
        MESSAGES
            .iter()
            .find(|(k, _, _)| *k == key)
            .map_or(key, |(_, zh, en)| match self {
                Lang::ZhCn => zh,
                Lang::En => en,
            })
    }

    /// An industry's name in this language.
    pub fn industry(self, industry: Industry) -> &'static str {
        match self {
            Lang::En => industry.name(),
            Lang::ZhCn => industry.name_zh(),
        }
    }
}

/// `(key, zh-CN, en)`.
const MESSAGES: &[(&str, &str, &str)] = &[
    ("app", "工业互联网平台", "Industrial Internet Platform"),
    ("login", "登录", "Log in"),
    ("logout", "退出", "Log out"),
    ("username", "用户名", "User name"),
    ("password", "密码", "Password"),
    (
        "login_failed",
        "用户名或密码错误",
        "Wrong user name or password",
    ),
    (
        "login_locked",
        "失败次数过多，请 15 分钟后再试",
        "Too many failed attempts; try again in 15 minutes",
    ),
    (
        "session_expired",
        "表单已过期，请重试",
        "The form expired; please try again",
    ),
    (
        "insecure_http",
        "此页面经未加密的 HTTP 打开，浏览器不会保存登录。请通过 HTTPS 访问（或在本机用 127.0.0.1）。",
        "This page came over plain HTTP: the browser will not keep the login. Use HTTPS (or 127.0.0.1 on this machine).",
    ),
    ("dashboard", "企业上云看板", "Onboarding dashboard"),
    ("totals", "总体情况", "Totals"),
    ("all_enterprises", "全部企业", "All enterprises"),
    ("in_program", "改造企业", "Enterprises in the program"),
    ("registered", "已登记", "Registered"),
    ("enrolled", "已接入网关", "Enrolled"),
    ("on_cloud", "已上云", "On the cloud"),
    ("active", "近 7 天活跃", "Active (7 days)"),
    ("silent", "已接入未上数", "Enrolled, silent"),
    ("target", "目标", "Target"),
    ("progress", "完成度", "Progress"),
    ("share_on_cloud", "上云率", "Share on the cloud"),
    ("by_industry", "按行业", "By industry"),
    ("by_district", "按区域", "By district"),
    ("industry", "行业", "Industry"),
    ("district", "区域", "District"),
    ("pilot", "试点", "pilot"),
    (
        "on_cloud_over_time",
        "上云企业数趋势（近 90 天）",
        "Enterprises on the cloud (last 90 days)",
    ),
    (
        "silent_list",
        "已接入但未上数的企业（请集成商跟进）",
        "Enrolled but silent (for follow-up by integrators)",
    ),
    ("none", "无", "None"),
    ("export_csv", "导出 CSV", "Export CSV"),
    ("enterprise", "企业", "Enterprise"),
    ("credit_code", "统一社会信用代码", "Credit code"),
    ("gateways", "网关", "Gateways"),
    ("gateway", "网关", "Gateway"),
    ("first_enrolled", "首次接入", "First enrolled"),
    ("last_batch", "最近上数", "Last data"),
    ("yes", "是", "yes"),
    ("no", "否", "no"),
    ("online", "在线", "online"),
    ("offline", "离线", "offline"),
    ("unknown", "未知", "unknown"),
    ("state", "状态", "State"),
    ("agent_version", "采集程序版本", "Agent version"),
    ("last_seen", "最近通信", "Last seen"),
    ("backlog", "积压批次", "Backlog (batches)"),
    ("evicted", "丢弃批次", "Evicted (batches)"),
    ("devices_points", "设备与测点", "Devices and points"),
    ("device", "设备", "Device"),
    ("point", "测点", "Point"),
    ("value", "最新值", "Latest value"),
    ("unit", "单位", "Unit"),
    ("quality", "质量", "Quality"),
    ("age", "更新于", "Updated"),
    ("chart", "曲线", "Chart"),
    ("good", "正常", "good"),
    ("bad", "异常", "bad"),
    ("uncertain", "存疑", "uncertain"),
    ("no_data", "暂无数据", "No data yet"),
    ("window", "时间范围", "Window"),
    ("min", "最小", "min"),
    ("max", "最大", "max"),
    ("avg", "平均", "mean"),
    ("samples_in_window", "窗口内样本数", "Samples in the window"),
    ("back", "返回", "Back"),
    ("forbidden", "无权访问此页面", "You may not see this page"),
    ("not_found", "页面不存在", "Page not found"),
    (
        "error",
        "出错了，请查看平台日志",
        "Something went wrong; see the platform's log",
    ),
    ("window_fit", "自动", "auto"),
    ("time", "时间", "Time"),
    ("date", "日期", "Date"),
    ("scope", "范围", "Scope"),
    ("name", "名称", "Name"),
    ("pilot_industry", "试点行业", "Pilot industry"),
    ("on_cloud_since", "上云时间", "On the cloud since"),
    ("new_on_cloud", "当日新上云", "New on the cloud"),
    (
        "in_program_on_cloud",
        "改造企业已上云",
        "In the program, on the cloud",
    ),
    (
        "in_program_active",
        "改造企业近 7 天活跃",
        "In the program, active (7 days)",
    ),
    ("just_now", "刚刚", "just now"),
    // `{n}` is a number and its unit, e.g. `3 分钟` / `3 min`.
    ("ago", "{n}前", "{n} ago"),
    ("minutes", "分钟", "min"),
    ("hours", "小时", "h"),
    ("days", "天", "d"),
    // Integrators' pages: the fleet, the ranking, data sharing.
    ("fleet", "网关运维", "Fleet"),
    ("integrators", "服务商", "Integrators"),
    ("integrator", "服务商", "Integrator"),
    (
        "search_gateways",
        "网关、企业名称或信用代码",
        "Gateway, enterprise or credit code",
    ),
    ("problems_only", "只看有问题的", "Problems only"),
    ("filter", "筛选", "Filter"),
    ("with_problems", "有问题", "With problems"),
    ("devices", "设备", "Devices"),
    ("config_version", "配置版本", "Config version"),
    ("problems", "问题", "Problems"),
    ("problem_offline", "离线", "offline"),
    ("problem_silent", "1 小时无数据", "no data for 1 h"),
    ("problem_backlog", "积压", "backlog"),
    ("problem_evicted", "缓存溢出丢弃", "evicted"),
    ("problem_missing", "批次缺失", "missing batches"),
    ("problem_device_down", "设备断开", "device down"),
    ("problem_device_error", "设备报错", "device error"),
    ("previous", "上一页", "Previous"),
    ("next", "下一页", "Next"),
    ("assigned", "已分配企业", "Assigned"),
    (
        "median_days_to_first_data",
        "分配到首条数据（中位天数）",
        "Median days to first data",
    ),
    ("completeness_7d", "7 日数据完整率", "Completeness, 7 days"),
    ("gateway_id", "网关编号", "Gateway id"),
    ("errors", "错误次数", "errors"),
    ("last_good_read", "最近成功读取", "last good read"),
    ("evidence", "验收材料", "Acceptance evidence"),
    (
        "evidence_title",
        "企业上云验收材料",
        "Acceptance evidence: enterprise on the cloud",
    ),
    ("evidence_generated", "生成时间", "Generated"),
    (
        "evidence_parties",
        "企业与服务商",
        "Enterprise and integrator",
    ),
    ("evidence_milestones", "关键时间", "Milestones"),
    ("evidence_last_30", "近 30 天", "Last 30 days"),
    (
        "evidence_basis",
        "以上数据均由平台根据已存储的数据计算，未经人工填报。完整率 = 已存储批次 / 网关编号的批次（不计断电重启跳过的编号）。",
        "Every figure is computed by the platform from the data it stores; nothing is entered by hand. Completeness = batches stored / batches the gateways numbered (numbers skipped by a crash restart not counted).",
    ),
    (
        "print_hint",
        "用浏览器打印（A4）即得纸质材料",
        "Print from the browser (A4) for the paper file",
    ),
    ("registered_at", "登记时间", "Registered"),
    (
        "assigned_at",
        "分配服务商时间",
        "Assigned to the integrator",
    ),
    (
        "first_enrolled_at",
        "首台网关接入时间",
        "First gateway enrolled",
    ),
    ("first_data", "首条数据", "First data"),
    ("points", "测点", "Points"),
    ("days_with_data_30d", "有数据的天数", "Days with data"),
    ("completeness_30d", "数据完整率", "Completeness"),
    ("samples_30d", "存储的数据点", "Samples stored"),
    ("missing_batches", "缺失批次", "Missing batches"),
    (
        "completeness_7d_percent",
        "7 日数据完整率（%）",
        "Completeness, 7 days (%)",
    ),
    (
        "share_data_with_bureau",
        "向主管部门共享数据",
        "Shares data with the bureau",
    ),
    (
        "start_sharing",
        "开始共享数据",
        "Share data with the bureau",
    ),
    ("stop_sharing", "停止共享数据", "Stop sharing data"),
    (
        "values_not_shared",
        "该企业未向主管部门共享生产数据：只显示数量与健康状况。",
        "This enterprise does not share its production data with the bureau: counts and health only.",
    ),
    // A gateway's configuration from the platform, and the device templates.
    ("config", "配置", "Config"),
    ("gateway_config", "网关配置", "Gateway configuration"),
    ("config_applied", "已应用", "applied"),
    ("config_pending", "待应用", "pending"),
    ("config_refused", "已拒绝", "refused"),
    ("config_local", "本地", "local"),
    ("config_state", "配置状态", "Standing"),
    ("config_newest", "平台最新版本", "Newest version saved"),
    ("config_running", "网关运行", "The gateway runs"),
    ("local_file", "本地配置文件", "its local file"),
    (
        "config_refusal",
        "网关拒绝的原因",
        "Why the gateway refused it",
    ),
    (
        "config_pending_note",
        "网关收到并检查通过后即应用；网关离线时，待其上线后应用。",
        "The gateway applies it once it has received and checked it; an offline gateway, once it is back.",
    ),
    (
        "config_text",
        "配置（TOML：[publish] 与 [[device]]）",
        "Config (TOML: [publish] and [[device]])",
    ),
    ("save", "保存", "Save"),
    (
        "save_note",
        "保存前用网关自身的校验代码检查；保存后成为下一个版本并下发给网关。",
        "Checked with the gateway's own validation first; once saved it is the next version and goes to the gateway.",
    ),
    (
        "config_read_only",
        "只读：配置由服务商或主管部门修改。",
        "Read only: the integrator or the bureau changes the config.",
    ),
    // `{n}` is the number of errors.
    (
        "config_errors",
        "配置有 {n} 处错误，未保存（已保留所填内容）：",
        "{n} error(s); nothing was saved (your text is kept):",
    ),
    (
        "at_line_column",
        "第 {line} 行第 {column} 列",
        "line {line}, column {column}",
    ),
    (
        "config_too_large",
        "配置过大：{bytes} 字节，最多 {max} 字节",
        "The config is {bytes} bytes; at most {max} are accepted",
    ),
    ("no_config", "平台尚未保存配置", "No config saved yet"),
    ("versions", "版本历史", "Versions"),
    ("version", "版本", "Version"),
    ("saved_at", "保存时间", "Saved"),
    ("saved_by", "保存人", "By"),
    ("published", "已下发", "Published"),
    ("running", "运行中", "running"),
    ("roll_back", "回滚到此版本", "Roll back to this"),
    ("templates", "设备模板", "Device templates"),
    (
        "template_pick",
        "从设备模板添加设备",
        "Add a device from a template",
    ),
    (
        "template_pick_note",
        "插入一个使用该模板的 [[device]]，再改地址、端口与站号。",
        "Inserts a [[device]] that uses the template; then change its address, port and unit.",
    ),
    ("insert_template", "插入设备", "Insert device"),
    ("all_templates", "全部模板", "All templates"),
    ("example", "示例", "example"),
    ("category", "类别", "Category"),
    ("manufacturer_model", "厂家与型号", "Manufacturer and model"),
    ("protocols", "协议", "Protocols"),
    ("source", "来源", "Source"),
    ("template_use", "用法", "How to use it"),
    ("template_file", "模板文件", "Template file"),
    (
        "templates_note",
        "设备模板随采集程序发布，平台用同一份文件校验配置。设备写 template = \"名称\" 即取用模板的测点；设备中列出的测点按名称追加或覆盖。标为“示例”的映射并非取自设备手册。",
        "The templates ship with the agent; the platform validates configs with the same files. A device with template = \"NAME\" takes the template's points; points listed in the device add to them or override them by name. A map marked example is not taken from a device's manual.",
    ),
    ("category_energy-meter", "电能表", "Energy meter"),
    (
        "category_temperature-controller",
        "温控器",
        "Temperature controller",
    ),
    ("category_inverter", "逆变器与变频器", "Inverter or drive"),
    ("category_plc", "PLC（可编程控制器）", "PLC"),
    // Alarms: the events, the rules and the notification channels.
    ("alarms", "告警", "Alarms"),
    ("alarm_events", "告警记录", "Alarms"),
    ("alarm_rules", "告警规则", "Alarm rules"),
    ("alarm_channels", "通知渠道", "Notification channels"),
    ("alarm_state_active", "未确认", "active"),
    ("alarm_state_acknowledged", "已确认", "acknowledged"),
    ("alarm_state_cleared", "已恢复", "cleared"),
    ("alarms_open", "未恢复", "Open"),
    (
        "alarms_all",
        "全部（含近期已恢复）",
        "All (with the recently cleared)",
    ),
    ("severity", "级别", "Severity"),
    ("severity_info", "提示", "info"),
    ("severity_warning", "警告", "warning"),
    ("severity_critical", "严重", "critical"),
    ("rule", "规则", "Rule"),
    ("watches", "监测对象", "Watches"),
    (
        "watches_form",
        "监测对象（网关 / 设备 / 测点）",
        "Watches (gateway / device / point)",
    ),
    ("cleared_value", "恢复值", "value"),
    ("alarm_value", "告警值", "Value"),
    ("raised_at", "告警时间", "Raised"),
    ("cleared_at", "恢复时间", "Cleared"),
    ("acknowledge", "确认", "Acknowledge"),
    ("no_alarms_open", "当前没有未恢复的告警", "No open alarms"),
    ("no_alarms", "暂无告警", "No alarms yet"),
    ("kind_high", "高于阈值", "Above the threshold"),
    ("kind_low", "低于阈值", "Below the threshold"),
    ("kind_equals", "等于", "Equal to"),
    ("kind_stale", "无数据", "No data"),
    ("kind_gateway_offline", "网关离线", "Gateway offline"),
    ("kind_device_down", "设备断线", "Device down"),
    (
        "kind_high_explain",
        "测点的值高于阈值并持续“持续时间”秒（0 为立即）时告警；降到“阈值 − 回差”以下时恢复。",
        "Raised when the point's value stays above the threshold for the given seconds (0: at once); cleared when it falls below threshold − hysteresis.",
    ),
    (
        "kind_low_explain",
        "测点的值低于阈值并持续“持续时间”秒时告警；升到“阈值 + 回差”以上时恢复。",
        "Raised when the point's value stays below the threshold for the given seconds; cleared when it rises above threshold + hysteresis.",
    ),
    (
        "kind_equals_explain",
        "测点的值等于阈值时告警（开关量与状态码：1 为真，0 为假），不等时恢复。",
        "Raised while the point's value equals the threshold (for switches and state codes: 1 is true, 0 false); cleared when it differs.",
    ),
    (
        "kind_stale_explain",
        "测点超过“持续时间”秒没有新数据时告警（须填持续时间），收到数据后恢复。",
        "Raised when the point has had no sample for the given seconds (required); cleared by the next sample.",
    ),
    (
        "kind_gateway_offline_explain",
        "网关离线或不再上报超过“持续时间”秒时告警，重新上线后恢复。选择网关即可。",
        "Raised when the gateway has been offline or silent for the given seconds; cleared when it is back. Choose a gateway.",
    ),
    (
        "kind_device_down_explain",
        "网关报告设备通讯中断（并持续“持续时间”秒）时告警，恢复通讯后恢复。选择设备即可。",
        "Raised when the gateway reports the device disconnected (for the given seconds); cleared when it is connected again. Choose a device.",
    ),
    ("rule_kind", "告警类型", "Kind"),
    ("rule_kinds", "告警类型说明", "The kinds of rules"),
    ("condition", "条件", "Condition"),
    ("threshold", "阈值", "Threshold"),
    ("hysteresis", "回差", "Hysteresis"),
    ("for_seconds", "持续时间（秒）", "For (seconds)"),
    // `{n}` is a number of seconds.
    ("for_n_seconds", "持续 {n} 秒", "for {n} s"),
    ("enabled", "已启用", "enabled"),
    ("disabled", "已停用", "disabled"),
    ("enable", "启用", "Enable"),
    ("disable", "停用", "Disable"),
    ("edit", "编辑", "Edit"),
    ("cancel", "取消", "Cancel"),
    ("no_rules", "尚未设置告警规则", "No alarm rules yet"),
    ("new_rule", "新建告警规则", "New alarm rule"),
    ("edit_rule", "编辑告警规则", "Edit alarm rule"),
    ("create_rule", "创建规则", "Create rule"),
    (
        "rule_not_saved",
        "规则未保存（已保留所填内容）：",
        "The rule was not saved (your input is kept):",
    ),
    (
        "rule_no_target",
        "请选择监测对象（网关、设备或测点）",
        "Choose what the rule watches (a gateway, device or point)",
    ),
    // `{field}` is a field's name.
    ("not_a_number", "{field}：不是数字", "{field}: not a number"),
    (
        "no_gateways_yet",
        "该企业还没有接入网关；网关接入并上报测点目录后即可选择。",
        "This enterprise has no gateway yet; once one is enrolled and has sent its catalogue, its devices and points are offered here.",
    ),
    (
        "no_channels_yet",
        "尚未添加通知渠道。",
        "No notification channel yet.",
    ),
    ("channel_kind", "渠道类型", "Kind"),
    ("channel_webhook", "Webhook", "Webhook"),
    ("channel_wecom", "企业微信", "WeCom"),
    ("channel_dingtalk", "钉钉", "DingTalk"),
    ("channel_feishu", "飞书", "Feishu"),
    ("url", "地址（URL）", "URL"),
    ("signed", "加签", "Signed"),
    ("created_at", "添加时间", "Added"),
    (
        "secret",
        "加签密钥（钉钉、飞书）",
        "Signing secret (DingTalk, Feishu)",
    ),
    (
        "secret_note",
        "钉钉、飞书机器人开启“加签”时填写其密钥；Webhook 与企业微信不填。机器人若设置了关键词，请设为“告警”。",
        "Fill in the robot's secret if its signing is on (DingTalk, Feishu); leave it empty for webhooks and WeCom. A robot secured by a keyword needs the keyword 告警.",
    ),
    ("new_channel", "添加通知渠道", "Add a notification channel"),
    ("add_channel", "添加渠道", "Add channel"),
    (
        "channel_not_saved",
        "渠道未保存（已保留所填内容）：",
        "The channel was not saved (your input is kept):",
    ),
    ("send_test", "发送测试消息", "Send test message"),
    ("test_delivered", "测试消息已送达", "Test message delivered"),
    (
        "test_not_delivered",
        "测试消息未送达",
        "Test message not delivered",
    ),
    ("open_alarms", "未恢复告警", "Open alarms"),
    ("view_alarms", "查看告警", "View alarms"),
    (
        "alarms_shared_only",
        "只统计向主管部门共享数据的企业；不显示规则与数值。",
        "Counted for enterprises that share their data with the bureau only; no rules or values are shown.",
    ),
    // `{n}` is a number of enterprises.
    (
        "alarms_withheld",
        "另有 {n} 家未共享数据的企业有未恢复告警，不逐一列出。",
        "{n} more enterprise(s) that do not share their data have open alarms; not itemised.",
    ),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_message_has_both_languages_and_keys_are_unique() {
        let mut keys = std::collections::HashSet::new();
        for (key, zh, en) in MESSAGES {
            assert!(keys.insert(key), "duplicate key {key}");
            assert!(!zh.is_empty() && !en.is_empty(), "{key}");
        }
        assert_eq!(Lang::ZhCn.text("login"), "登录");
        assert_eq!(Lang::En.text("login"), "Log in");
        assert_eq!(Lang::from_tag("en"), Some(Lang::En));
        assert_eq!(Lang::from_tag("fr"), None);
    }
}
