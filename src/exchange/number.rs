//! JSON numbers as exact decimal text, for exchanges that send prices and amounts as JSON numbers
//! (Deribit: `56273.5`, `6000.0`, `0.0005`, and exponent forms such as `1e-05` for tiny option
//! prices). The output keeps exactly the digits sent (`6000.0` stays `6000.0`); an exponent only
//! moves the decimal point, digit by digit, never through binary floating point.

/// Largest exponent magnitude accepted (prices and amounts are far inside it; beyond is an error,
/// not a thousand-digit string).
const MAX_EXPONENT: i32 = 40;

/// Why a number's text could not be made a plain decimal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberError {
    /// Not a JSON number (`+1`, `01`, `1.`, `.5`, `1e`, `NaN`, ...).
    Syntax,
    /// An exponent beyond ±[`MAX_EXPONENT`].
    Exponent,
}

/// Appends the plain decimal form of the JSON number `num` to `out`: the text unchanged when it
/// has no exponent, else the mantissa's digits with the point moved (`1e-05` -> `0.00001`,
/// `1.50e1` -> `15.0`, `-2.5E+3` -> `-2500`). Allocates only when `out` must grow.
pub fn plain_decimal(num: &str, out: &mut String) -> Result<(), NumberError> {
    let b = num.as_bytes();
    let (neg, body) = match b.first() {
        Some(b'-') => (true, &b[1..]),
        _ => (false, b),
    };
    let digits_end = |s: &[u8]| {
        s.iter()
            .position(|c| !c.is_ascii_digit())
            .unwrap_or(s.len())
    };
    let int_len = digits_end(body);
    if int_len == 0 || (int_len > 1 && body[0] == b'0') {
        return Err(NumberError::Syntax);
    }
    let int = &body[..int_len];
    let mut rest = &body[int_len..];
    let mut frac: &[u8] = &[];
    if let Some((&b'.', r)) = rest.split_first() {
        let n = digits_end(r);
        if n == 0 {
            return Err(NumberError::Syntax);
        }
        frac = &r[..n];
        rest = &r[n..];
    }
    let exp = match rest.split_first() {
        None => {
            out.push_str(num);
            return Ok(());
        }
        Some((&(b'e' | b'E'), r)) => {
            let (sign, digits) = match r.split_first() {
                Some((&b'-', d)) => (-1i32, d),
                Some((&b'+', d)) => (1, d),
                _ => (1, r),
            };
            if digits.is_empty() || digits_end(digits) != digits.len() {
                return Err(NumberError::Syntax);
            }
            let mut e: i32 = 0;
            for &c in digits {
                e = e
                    .checked_mul(10)
                    .and_then(|e| e.checked_add(i32::from(c - b'0')))
                    .filter(|e| *e <= MAX_EXPONENT)
                    .ok_or(NumberError::Exponent)?;
            }
            sign * e
        }
        Some(_) => return Err(NumberError::Syntax),
    };
    // All significant digits in order, and where the point goes among them.
    let digit = |i: usize| -> u8 {
        if i < int.len() {
            int[i]
        } else {
            frac[i - int.len()]
        }
    };
    let n = int.len() + frac.len();
    let point = int.len() as i64 + i64::from(exp);
    if neg {
        out.push('-');
    }
    if point <= 0 {
        // 0.000ddd: the point is `-point` places before the first digit (`1e-05`: `0.0000` then
        // `1`; `0.5e-2`: digits `05` one place after the point, `0.005`).
        out.push_str("0.");
        for _ in 0..-point {
            out.push('0');
        }
        for i in 0..n {
            out.push(digit(i) as char);
        }
        return Ok(());
    }
    let point = point as usize;
    // Integer part: the digits before the point, padded with zeros when the exponent reaches past
    // the mantissa (`2e2` -> `200`); a leading `0` of the mantissa (`0.5e1`) is dropped.
    let mut wrote = false;
    for i in 0..point {
        let c = if i < n { digit(i) } else { b'0' };
        if !wrote && c == b'0' && i + 1 < point {
            continue;
        }
        wrote = true;
        out.push(c as char);
    }
    if point < n {
        out.push('.');
        for i in point..n {
            out.push(digit(i) as char);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(s: &str) -> Result<String, NumberError> {
        let mut out = String::new();
        plain_decimal(s, &mut out).map(|()| out)
    }

    #[test]
    fn text_without_exponent_is_kept_exactly() {
        for s in [
            "56273.5",
            "6000.0",
            "0.0005",
            "0",
            "-0.0",
            "10",
            "-1.2500",
            "31479219781",
        ] {
            assert_eq!(plain(s).unwrap(), s);
        }
    }

    #[test]
    fn exponents_move_the_point_exactly() {
        for (s, want) in [
            ("1e-05", "0.00001"),
            ("1E-5", "0.00001"),
            ("2.5e-3", "0.0025"),
            ("1.50e1", "15.0"),
            ("1.5e1", "15"),
            ("-2.5E+3", "-2500"),
            ("2e2", "200"),
            ("1e0", "1"),
            ("0e0", "0"),
            ("0.5e1", "5"),
            ("0.5e-2", "0.005"),
            ("0e-2", "0.00"),
            ("12.5e-1", "1.25"),
            ("12.5e-2", "0.125"),
            ("12.5e-3", "0.0125"),
            ("1.23456e2", "123.456"),
            ("9.99e-1", "0.999"),
            ("-7e-1", "-0.7"),
            ("1e40", "10000000000000000000000000000000000000000"),
        ] {
            assert_eq!(plain(s).unwrap(), want, "{s}");
        }
        // Every result reads back as the same value (checked with f64 only where exact).
        for (s, want) in [("1e-05", 1e-05), ("2.5e-3", 0.0025), ("1.50e1", 15.0)] {
            assert_eq!(plain(s).unwrap().parse::<f64>().unwrap(), want);
        }
    }

    #[test]
    fn non_numbers_and_huge_exponents_are_errors() {
        for s in [
            "", "-", "+1", "01", "1.", ".5", "1e", "1e+", "1ee5", "NaN", "1.2.3", "1e5x", "0x10",
            " 1",
        ] {
            assert_eq!(plain(s), Err(NumberError::Syntax), "{s:?}");
        }
        assert_eq!(plain("1e41"), Err(NumberError::Exponent));
        assert_eq!(plain("1e-999999999999"), Err(NumberError::Exponent));
        // The output is always a plain decimal the book and encoders accept.
        for s in ["1e-05", "2e2", "-2.5E+3", "0.5e-2"] {
            assert!(crate::exchange::is_decimal(&plain(s).unwrap()), "{s}");
        }
    }

    /// The value as (significant digits, power of ten): `12.50e-1` -> ("125", -2).
    fn canonical(digits: &str, scale: i64) -> (String, i64) {
        let mut d = digits.trim_start_matches('0').to_string();
        let mut e = -scale;
        while d.ends_with('0') {
            d.pop();
            e += 1;
        }
        if d.is_empty() {
            return (String::new(), 0);
        }
        (d, e)
    }

    /// Seeded: random mantissas and exponents; the output's value, read as digits and a scale,
    /// equals the input's (an independent digit-string computation, no floating point).
    #[test]
    fn value_is_preserved_for_random_numbers() {
        let mut x: u64 = 0x2545_F491_4F6C_DD1D;
        let mut next = |n: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % n
        };
        for _ in 0..20_000 {
            let int = if next(4) == 0 {
                "0".to_string()
            } else {
                let len = 1 + next(6);
                (0..len)
                    .map(|i| char::from(b'0' + (if i == 0 { 1 + next(9) } else { next(10) }) as u8))
                    .collect()
            };
            let frac: String = (0..next(7))
                .map(|_| char::from(b'0' + next(10) as u8))
                .collect();
            let exp = next(25) as i64 - 12;
            let text = format!(
                "{}{int}{}{}e{exp}",
                if next(2) == 0 { "-" } else { "" },
                if frac.is_empty() { "" } else { "." },
                frac
            );
            let out = plain(&text).unwrap();
            assert!(crate::exchange::is_decimal(&out), "{text} -> {out}");
            let (neg_in, neg_out) = (text.starts_with('-'), out.starts_with('-'));
            assert_eq!(neg_in, neg_out, "{text}");
            let want = canonical(&format!("{int}{frac}"), frac.len() as i64 - exp);
            let body = out.trim_start_matches('-');
            let (i, f) = body.split_once('.').unwrap_or((body, ""));
            assert_eq!(
                canonical(&format!("{i}{f}"), f.len() as i64),
                want,
                "{text} -> {out}"
            );
        }
    }
}
