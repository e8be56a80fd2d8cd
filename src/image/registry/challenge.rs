//! `WWW-Authenticate` challenges (RFC 7235) as registries send them:
//! `Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a:pull"`
//! or `Basic realm="Registry Realm"`.

use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Challenge {
    Basic,
    Bearer {
        realm: String,
        service: Option<String>,
        scope: Option<String>,
    },
}

/// Every challenge burrow understands in one header value, in order. Unknown schemes and
/// Bearer challenges without a realm are skipped; a value that cannot be parsed gives none.
pub fn parse(header: &str) -> Vec<Challenge> {
    let mut p = Parser {
        s: header.as_bytes(),
        i: 0,
    };
    let mut out = Vec::new();
    loop {
        p.skip(|b| b == b',' || b.is_ascii_whitespace());
        if p.at_end() {
            break;
        }
        let scheme = p.token();
        if scheme.is_empty() {
            // Stray punctuation (the tail of a token68 such as `abc==`): step over it.
            p.i += 1;
            continue;
        }
        let mut params = HashMap::new();
        loop {
            p.skip(|b| b.is_ascii_whitespace());
            let start = p.i;
            let key = p.token();
            p.skip(|b| b.is_ascii_whitespace());
            if key.is_empty() || !p.eat(b'=') {
                // Not `key=value`: the next challenge's scheme starts here.
                p.i = start;
                break;
            }
            p.skip(|b| b.is_ascii_whitespace());
            let value = if p.peek() == Some(b'"') {
                p.quoted()
            } else {
                p.token()
            };
            params.insert(key.to_ascii_lowercase(), value);
            p.skip(|b| b.is_ascii_whitespace());
            if !p.eat(b',') {
                break;
            }
        }
        match scheme.to_ascii_lowercase().as_str() {
            "basic" => out.push(Challenge::Basic),
            "bearer" => {
                if let Some(realm) = params.remove("realm").filter(|r| !r.is_empty()) {
                    out.push(Challenge::Bearer {
                        realm,
                        service: params.remove("service"),
                        scope: params.remove("scope"),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

struct Parser<'a> {
    s: &'a [u8],
    i: usize,
}

impl Parser<'_> {
    fn at_end(&self) -> bool {
        self.i >= self.s.len()
    }
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }
    fn eat(&mut self, b: u8) -> bool {
        if self.peek() == Some(b) {
            self.i += 1;
            true
        } else {
            false
        }
    }
    fn skip(&mut self, f: impl Fn(u8) -> bool) {
        while self.peek().is_some_and(&f) {
            self.i += 1;
        }
    }
    fn token(&mut self) -> String {
        let start = self.i;
        self.skip(|b| !(b.is_ascii_whitespace() || b == b',' || b == b'=' || b == b'"'));
        String::from_utf8_lossy(&self.s[start..self.i]).into_owned()
    }
    fn quoted(&mut self) -> String {
        let mut out = Vec::new();
        self.i += 1;
        while let Some(b) = self.peek() {
            self.i += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    if let Some(next) = self.peek() {
                        out.push(next);
                        self.i += 1;
                    }
                }
                other => out.push(other),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bearer(realm: &str, service: Option<&str>, scope: Option<&str>) -> Challenge {
        Challenge::Bearer {
            realm: realm.into(),
            service: service.map(Into::into),
            scope: scope.map(Into::into),
        }
    }

    #[test]
    fn docker_hub_bearer() {
        assert_eq!(
            parse(
                r#"Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull""#
            ),
            vec![bearer(
                "https://auth.docker.io/token",
                Some("registry.docker.io"),
                Some("repository:library/busybox:pull")
            )]
        );
    }

    #[test]
    fn basic_and_variants() {
        assert_eq!(
            parse(r#"Basic realm="Registry Realm""#),
            vec![Challenge::Basic]
        );
        assert_eq!(parse("basic"), vec![Challenge::Basic]);
        assert_eq!(
            parse(r#"bearer  REALM = "http://127.0.0.1:1/t" , service=reg"#),
            vec![bearer("http://127.0.0.1:1/t", Some("reg"), None)]
        );
        // Scopes with several actions contain commas inside the quotes.
        assert_eq!(
            parse(
                r#"Bearer realm="r",scope="repository:a/b:pull,push",error="insufficient_scope""#
            ),
            vec![bearer("r", None, Some("repository:a/b:pull,push"))]
        );
        assert_eq!(
            parse(r#"Bearer realm="a \"quoted\" realm""#),
            vec![bearer(r#"a "quoted" realm"#, None, None)]
        );
    }

    #[test]
    fn several_challenges_in_one_header() {
        assert_eq!(
            parse(r#"Negotiate abc123==, Basic realm="x", Bearer realm="https://t",service="s""#),
            vec![Challenge::Basic, bearer("https://t", Some("s"), None)]
        );
        assert_eq!(
            parse(r#"Basic realm="x", Bearer realm="https://t""#),
            vec![Challenge::Basic, bearer("https://t", None, None)]
        );
    }

    #[test]
    fn unusable_challenges() {
        assert_eq!(parse(""), vec![]);
        assert_eq!(parse("Bearer"), vec![]);
        assert_eq!(parse(r#"Bearer service="s""#), vec![]);
        assert_eq!(parse(r#"Digest realm="x", nonce="y""#), vec![]);
    }
}
