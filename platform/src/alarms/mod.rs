//! Alarms and notifications (DESIGN.md, "Alarms"): rules are checked before they are saved
//! ([`rules`]) and evaluated by the store, in the ingest's transaction and on the timers'
//! clock ([`timer`]); their notifications go out from the persistent queue ([`delivery`])
//! through the channels ([`channel`]: webhooks and the WeCom, DingTalk and Feishu group
//! robots).

pub mod channel;
pub mod delivery;
pub mod rules;
pub mod timer;
