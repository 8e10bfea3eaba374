//! How a household appears in published minutes and disclosure lists: its address with all but
//! the first two characters masked (村组 practice: the village is known, the door is not), never
//! its id or names.

pub fn masked_address(address: &str) -> String {
    let shown: String = address.chars().take(2).collect();
    let hidden = address.chars().count().saturating_sub(2).clamp(1, 6);
    format!("{shown}{}", "*".repeat(hidden))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_first_two_characters_show() {
        assert_eq!(masked_address("新街村一组3号"), "新街*****");
        assert_eq!(masked_address(""), "*");
        assert_eq!(masked_address("新街村一组三十三号之一"), "新街******");
    }
}
