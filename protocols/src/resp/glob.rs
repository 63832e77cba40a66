//! Redis's glob patterns (`KEYS`, `SCAN … MATCH`, `CONFIG GET`): `*`, `?`,
//! `[abc]`, `[^abc]`, `[a-z]` and `\x`, matched bytewise as `stringmatchlen`.

/// Whether `s` matches `pattern`.
pub fn matches(pattern: &[u8], s: &[u8]) -> bool {
    // Iterative with one backtrack point (the last `*`): linear in practice,
    // never recursive, so no pattern can exhaust the guest's stack.
    let (mut p, mut i) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pattern.len() {
            match pattern[p] {
                b'*' => {
                    while p < pattern.len() && pattern[p] == b'*' {
                        p += 1;
                    }
                    if p == pattern.len() {
                        return true;
                    }
                    star = Some((p, i));
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((true, next)) = class(pattern, p, s[i]) {
                        p = next;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pattern.len() => {
                    if pattern[p + 1] == s[i] {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if c == s[i] {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        // Mismatch: let the last `*` take one more byte, if there is one.
        match star {
            Some((sp, si)) => {
                p = sp;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    pattern[p..].iter().all(|&c| c == b'*')
}

/// Matches byte `c` against the class starting at `pattern[at] == b'['`:
/// `(matched, index after the class)`; `None` if unterminated (then `[` is literal
/// in redis; here the byte simply does not match).
fn class(pattern: &[u8], at: usize, c: u8) -> Option<(bool, usize)> {
    let mut p = at + 1;
    let negate = pattern.get(p) == Some(&b'^');
    if negate {
        p += 1;
    }
    let mut hit = false;
    loop {
        let b = *pattern.get(p)?;
        match b {
            b']' => break,
            b'\\' if p + 1 < pattern.len() => {
                hit |= pattern[p + 1] == c;
                p += 2;
            }
            _ if pattern.get(p + 1) == Some(&b'-') && pattern.get(p + 2).is_some_and(|&e| e != b']') => {
                let (mut lo, mut hi) = (b, pattern[p + 2]);
                if lo > hi {
                    core::mem::swap(&mut lo, &mut hi);
                }
                hit |= (lo..=hi).contains(&c);
                p += 3;
            }
            _ => {
                hit |= b == c;
                p += 1;
            }
        }
    }
    Some((hit != negate, p + 1))
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn like_redis() {
        for (p, s, want) in [
            ("*", "", true),
            ("*", "abc", true),
            ("a*", "abc", true),
            ("a*c", "abbbc", true),
            ("a*c", "abbbd", false),
            ("h?llo", "hello", true),
            ("h?llo", "hllo", false),
            ("h[ae]llo", "hallo", true),
            ("h[ae]llo", "hillo", false),
            ("h[^e]llo", "hallo", true),
            ("h[^e]llo", "hello", false),
            ("h[a-b]llo", "hbllo", true),
            ("h[a-b]llo", "hcllo", false),
            ("key:*:x", "key:1:2:x", true),
            ("\\*", "*", true),
            ("\\*", "a", false),
            ("*a*a*a*a*b", "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", false),
        ] {
            assert_eq!(matches(p.as_bytes(), s.as_bytes()), want, "{p} ~ {s}");
        }
    }
}
