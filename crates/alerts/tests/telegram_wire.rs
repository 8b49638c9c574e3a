//! The real `BotApi` against the fake Bot API on loopback: each answer Telegram can give
//! lands in the right `SendOutcome`, and the fake shows what a chat would.

use std::time::Duration;

use so_alerts::telegram::api::{BotApi, SendOutcome};
use so_alerts::telegram::fake::{FakeBotApi, Reply};
use so_alerts::telegram::format::{self, MAX_TEXT_CHARS};

const TOKEN: &str = "7000001:AAFakeTokenForTheWireTests";
const CHAT: i64 = -1001234567890;
const MD: Option<&str> = Some("MarkdownV2");

async fn pair() -> (FakeBotApi, BotApi) {
    let fake = FakeBotApi::start(TOKEN).await.unwrap();
    let api = BotApi::new(&fake.base_url(), TOKEN.to_string(), Duration::from_secs(5)).unwrap();
    (fake, api)
}

#[tokio::test]
async fn ok_is_sent_and_recorded_as_shown() {
    let (fake, api) = pair().await;
    let plain = "KRW-BTC 1.5% up (upbit)!";
    let outcome = api.send_message(CHAT, &format::escape_markdown_v2(plain), MD).await;
    assert_eq!(outcome, SendOutcome::Sent);
    let got = fake.delivered();
    assert_eq!(got.len(), 1);
    assert_eq!((got[0].chat_id, got[0].shown.as_str(), got[0].answered), (CHAT, plain, 200));
    assert_eq!(got[0].parse_mode.as_deref(), MD);
}

#[tokio::test]
async fn faults_map_to_outcomes() {
    let (fake, api) = pair().await;
    fake.script([
        Reply::TooManyRequests { retry_after: 7 },
        Reply::Status(403),
        Reply::Status(500),
        Reply::Migrate { to_chat_id: -1_009_876_543_210 },
        Reply::Status(400),
    ]);
    let send = || api.send_message(CHAT, "hello", None);
    assert_eq!(send().await, SendOutcome::RetryAfter { seconds: 7 });
    match send().await {
        SendOutcome::Rejected { code: 403, description } => assert!(description.contains("blocked"), "{description}"),
        other => panic!("{other:?}"),
    }
    assert!(matches!(send().await, SendOutcome::Transient { .. }));
    assert_eq!(send().await, SendOutcome::Migrated { to_chat_id: -1_009_876_543_210 });
    assert!(matches!(send().await, SendOutcome::Rejected { code: 400, .. }));
    // The script is used up: back to normal.
    assert_eq!(send().await, SendOutcome::Sent);
    let answered: Vec<u16> = fake.received().iter().map(|r| r.answered).collect();
    assert_eq!(answered, [429, 403, 500, 400, 400, 200]);
    assert_eq!(fake.delivered().len(), 1);
}

#[tokio::test]
async fn sticky_and_per_chat_faults() {
    let (fake, api) = pair().await;
    fake.block_chat(42);
    assert!(matches!(api.send_message(42, "x", None).await, SendOutcome::Rejected { code: 403, .. }));
    assert_eq!(api.send_message(43, "x", None).await, SendOutcome::Sent);
    fake.set_always(Some(Reply::Status(502)));
    assert!(matches!(api.send_message(43, "x", None).await, SendOutcome::Transient { .. }));
    assert!(matches!(api.send_message(43, "x", None).await, SendOutcome::Transient { .. }));
    fake.set_always(None);
    assert_eq!(api.send_message(43, "x", None).await, SendOutcome::Sent);
}

#[tokio::test]
async fn wrong_token_is_rejected_without_naming_either_token() {
    let fake = FakeBotApi::start(TOKEN).await.unwrap();
    let wrong = "7000002:AAWrongTokenNobodyShouldSee";
    let api = BotApi::new(&fake.base_url(), wrong.to_string(), Duration::from_secs(5)).unwrap();
    let outcome = api.send_message(CHAT, "hello", None).await;
    let SendOutcome::Rejected { code: 404, description } = &outcome else { panic!("{outcome:?}") };
    let text = format!("{outcome:?} {description} {api:?}");
    assert!(!text.contains(TOKEN) && !text.contains(wrong), "{text}");
    assert!(fake.delivered().is_empty());
}

#[tokio::test]
async fn every_reserved_character_survives_render() {
    let (fake, api) = pair().await;
    let title = "Alert _*[]()~`>#+-=|{}.!\\ 경보";
    let body = "KRW-BTC -5.1% (1m) [upbit] a_b*c ~d~ `e` >f #g +h -i =j |k| {l} m. n! \\o 삼성전자";
    assert_eq!(api.send_message(CHAT, &format::render(title, body), MD).await, SendOutcome::Sent);
    assert_eq!(fake.delivered()[0].shown, format!("{title}\n{body}"));
}

#[tokio::test]
async fn the_fake_refuses_unescaped_markdown() {
    let (fake, api) = pair().await;
    let outcome = api.send_message(CHAT, "*Alert*\nKRW-BTC -5.1% (1m)", MD).await;
    match outcome {
        SendOutcome::Rejected { code: 400, description } => {
            assert!(description.contains("can't parse entities") && description.contains("reserved"), "{description}")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(api.send_message(CHAT, "*unclosed bold", MD).await, SendOutcome::Rejected { code: 400, .. }));
    assert!(matches!(api.send_message(CHAT, "", None).await, SendOutcome::Rejected { code: 400, .. }));
    let too_long = "a".repeat(MAX_TEXT_CHARS + 1);
    assert!(matches!(api.send_message(CHAT, &too_long, None).await, SendOutcome::Rejected { code: 400, .. }));
    assert!(fake.delivered().is_empty());
    assert_eq!(fake.received().len(), 4);
}

#[tokio::test]
async fn a_long_text_goes_as_two_accepted_messages() {
    let (fake, api) = pair().await;
    let line = "삼성전자 (005930) 체결 71,200원 +1.2% vol=1234!\n";
    let text: String = line.chars().cycle().take(5_000).collect();
    let pieces = format::split(&text, MAX_TEXT_CHARS);
    assert_eq!(pieces.len(), 2);
    for piece in &pieces {
        assert_eq!(api.send_message(CHAT, &format::escape_markdown_v2(piece), MD).await, SendOutcome::Sent);
    }
    let shown: Vec<String> = fake.delivered().into_iter().map(|r| r.shown).collect();
    assert_eq!(shown.len(), 2);
    assert_eq!(shown.concat(), text);
}
