//! ID and phone numbers as a cadre types them: parsing must answer Ok or Err, never panic, and
//! what it accepts must mask and re-parse to itself.
#![no_main]

use jiaxin_identity::domain::id_number::{IdNumber, mask_phone, parse_phone};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|input: &str| {
    let today = chrono::NaiveDate::from_ymd_opt(2026, 11, 29).unwrap_or_default();
    if let Ok(id) = IdNumber::parse(input, today) {
        assert_eq!(id.masked().chars().count(), 18);
        assert_eq!(IdNumber::parse(id.as_str(), today).as_ref(), Ok(&id));
        let _ = id.is_adult_on(today);
    }
    if let Ok(phone) = parse_phone(input) {
        assert_eq!(parse_phone(&phone), Ok(phone.clone()));
        assert_eq!(mask_phone(&phone).len(), 11);
    }
    // Masking is also applied to stored values: any string must mask without panicking.
    let _ = mask_phone(input);
});
