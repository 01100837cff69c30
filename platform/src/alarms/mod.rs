//! Alarms: rules over the stored samples, their raises and clears, and the notification
//! channels that carry them to people ([`channel`]: webhooks and the WeCom, DingTalk and
//! Feishu group robots).

pub mod channel;
