//! Resident ID numbers (居民身份证号码, GB 11643-1999) and phone numbers: validation, the facts
//! an ID number carries (birth date, gender), and the masked forms shown on every read.

use chrono::NaiveDate;

const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
const CHECK_CHARS: &[u8; 11] = b"10X98765432";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdNumber {
    normalized: String,
    pub birth_date: NaiveDate,
    pub male: bool,
}

/// Why an ID number was refused; the message never repeats the number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum IdNumberError {
    #[error("身份证号应为18位 / must be 18 characters")]
    Length,
    #[error("身份证号前17位应为数字 / first 17 characters must be digits")]
    Digits,
    #[error("身份证号出生日期无效 / birth date is invalid")]
    BirthDate,
    #[error("身份证号校验位错误 / checksum does not match")]
    Checksum,
}

impl IdNumber {
    pub fn parse(raw: &str, today: NaiveDate) -> Result<Self, IdNumberError> {
        let normalized = raw.trim().to_ascii_uppercase();
        let bytes = normalized.as_bytes();
        if bytes.len() != 18 {
            return Err(IdNumberError::Length);
        }
        if !bytes[..17].iter().all(u8::is_ascii_digit) {
            return Err(IdNumberError::Digits);
        }
        let birth_date =
            NaiveDate::parse_from_str(&normalized[6..14], "%Y%m%d").map_err(|_| IdNumberError::BirthDate)?;
        if birth_date > today || birth_date < NaiveDate::from_ymd_opt(1880, 1, 1).unwrap_or(NaiveDate::MIN) {
            return Err(IdNumberError::BirthDate);
        }
        if bytes[17] != check_char(&bytes[..17]) {
            return Err(IdNumberError::Checksum);
        }
        let male = (bytes[16] - b'0') % 2 == 1;
        Ok(Self { normalized, birth_date, male })
    }

    pub fn as_str(&self) -> &str {
        &self.normalized
    }

    /// `3208**********1234`: region prefix and last four only.
    pub fn masked(&self) -> String {
        format!("{}**********{}", &self.normalized[..4], &self.normalized[14..])
    }

    pub fn is_adult_on(&self, day: NaiveDate) -> bool {
        age_on(self.birth_date, day) >= 18
    }
}

pub use jiaxin_kit::time::age_on;

/// The check character for the first 17 digits.
pub fn check_char(first17: &[u8]) -> u8 {
    let sum: u32 = first17.iter().zip(WEIGHTS).map(|(d, w)| u32::from(d - b'0') * w).sum();
    CHECK_CHARS[(sum % 11) as usize]
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("手机号应为以1开头的11位数字 / must be 11 digits starting with 1")]
pub struct PhoneError;

/// A mainland mobile number, normalised (spaces, dashes and a +86 prefix removed).
pub fn parse_phone(raw: &str) -> Result<String, PhoneError> {
    let digits: String = raw.chars().filter(|c| !matches!(c, ' ' | '-')).collect();
    let digits = digits.strip_prefix("+86").unwrap_or(&digits).to_owned();
    if digits.len() == 11 && digits.starts_with('1') && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(digits)
    } else {
        Err(PhoneError)
    }
}

/// `138****1234`; anything that is not 11 ASCII characters masks to `***` (never a panic on
/// a stored value that is not what it should be).
pub fn mask_phone(phone: &str) -> String {
    match (phone.len(), phone.get(..3), phone.get(7..)) {
        (11, Some(head), Some(tail)) if phone.is_ascii() => format!("{head}****{tail}"),
        _ => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 11, 29).unwrap()
    }

    /// Builds a valid number from 17 digits.
    pub fn with_check(first17: &str) -> String {
        format!("{first17}{}", check_char(first17.as_bytes()) as char)
    }

    #[test]
    fn parses_a_valid_number() {
        let raw = with_check("32083019900101123");
        let id = IdNumber::parse(&raw, today()).unwrap();
        assert_eq!(id.birth_date, NaiveDate::from_ymd_opt(1990, 1, 1).unwrap());
        assert!(id.male, "17th digit 3 is odd");
        assert_eq!(id.masked(), format!("3208**********{}", &raw[14..]));
        assert!(id.is_adult_on(today()));
    }

    #[test]
    fn refuses_bad_numbers_with_the_reason() {
        let good = with_check("32083019900101123");
        let mut bad_check = good.clone();
        bad_check.replace_range(17..18, if &good[17..] == "0" { "1" } else { "0" });
        assert_eq!(IdNumber::parse(&bad_check, today()), Err(IdNumberError::Checksum));
        assert_eq!(IdNumber::parse("123", today()), Err(IdNumberError::Length));
        assert_eq!(IdNumber::parse("32083019900A011234", today()), Err(IdNumberError::Digits));
        assert_eq!(IdNumber::parse(&with_check("32083019901301123"), today()), Err(IdNumberError::BirthDate));
        assert_eq!(IdNumber::parse(&with_check("32083020990101123"), today()), Err(IdNumberError::BirthDate));
    }

    #[test]
    fn known_check_character_x() {
        // The published GB 11643 example: 11010519491231002X.
        assert!(IdNumber::parse("11010519491231002x", today()).is_ok());
    }

    #[test]
    fn ages_count_whole_years() {
        let birth = NaiveDate::from_ymd_opt(2008, 11, 30).unwrap();
        assert_eq!(age_on(birth, today()), 17);
        assert_eq!(age_on(birth, NaiveDate::from_ymd_opt(2026, 11, 30).unwrap()), 18);
    }

    #[test]
    fn phones_normalise_and_mask() {
        assert_eq!(parse_phone("+86 138-0000-1234").unwrap(), "13800001234");
        assert_eq!(mask_phone("13800001234"), "138****1234");
        assert!(parse_phone("12345").is_err());
        // Eleven bytes that are not eleven ASCII characters (a cut inside 中 would panic).
        assert_eq!(mask_phone("a中文1234"), "***");
        assert_eq!(mask_phone("短"), "***");
    }
}
