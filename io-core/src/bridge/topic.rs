//! Topic templates and MQTT filter matching.
//!
//! A template such as `{prefix}/{site}/{client}/{target}/{name}` is parsed once, when the
//! configuration is loaded, so that a typo in a placeholder is a load error that names the key,
//! not a runtime surprise. Its literal text is the operator's and is checked at load; the values
//! put in its placeholders come from the network (a device's target and message names), so they
//! are escaped when a topic is rendered: MQTT gives `+` and `#` a meaning in filters, forbids
//! NUL, and reserves topics that begin with `$`. A device must never be able to publish to a
//! topic the operator did not map, nor make a topic that a subscriber's filter reads as a
//! wildcard. The escape is percent-encoding of exactly `%`, `+`, `#`, NUL and a leading `$`,
//! which is injective ([`unescape`] inverts it), so two different names never share a topic.

use core::fmt;

/// The longest topic MQTT allows (a two-byte length prefix).
pub const MAX_TOPIC_LEN: usize = 65_535;

/// A placeholder of a topic template or a name template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Var {
    /// `{prefix}`: `[mqtt] prefix`.
    Prefix,
    /// `{site}`: the top-level `site`.
    Site,
    /// `{bridge}`: the top-level `bridge_id`.
    Bridge,
    /// `{client}`: a client's key name, else its id in hex.
    Client,
    /// `{server}`: an `[[upstream]]`'s name.
    Server,
    /// `{target}`: a Pavillion message target.
    Target,
    /// `{name}`: a Pavillion message name.
    Name,
    /// `{function}`: an RPC function number.
    Function,
    /// `{n}`: a register number.
    Register,
    /// `{topic}`: a received MQTT topic (name templates of `[[from_mqtt]]`).
    Topic,
    /// `{tail}`: what a filter's trailing `#` (or last `+`) matched.
    Tail,
}

impl Var {
    const ALL: [(Var, &'static str); 11] = [
        (Var::Prefix, "prefix"),
        (Var::Site, "site"),
        (Var::Bridge, "bridge"),
        (Var::Client, "client"),
        (Var::Server, "server"),
        (Var::Target, "target"),
        (Var::Name, "name"),
        (Var::Function, "function"),
        (Var::Register, "n"),
        (Var::Topic, "topic"),
        (Var::Tail, "tail"),
    ];

    /// The placeholder's name, without braces.
    pub fn name(self) -> &'static str {
        Var::ALL
            .iter()
            .find(|(v, _)| *v == self)
            .map_or("?", |(_, n)| n)
    }

    fn parse(s: &str) -> Option<Var> {
        Var::ALL.iter().find(|(_, n)| *n == s).map(|(v, _)| *v)
    }
}

/// Why a template did not parse, or used a placeholder its key does not offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `{` without `}`, or `}` without `{`.
    Unbalanced,
    /// `{word}` that is not a placeholder.
    UnknownPlaceholder(String),
    /// A placeholder that this key cannot fill (for example `{client}` in a presence topic of
    /// the bridge itself).
    NotHere(Var),
    /// `+`, `#` or NUL in the literal text of a topic that is published to.
    Wildcard,
    /// An empty template.
    Empty,
}

impl fmt::Display for TemplateError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TemplateError::Unbalanced => f.write_str("unbalanced { or } in the template"),
            TemplateError::UnknownPlaceholder(p) => write!(f, "unknown placeholder {{{p}}}"),
            TemplateError::NotHere(v) => write!(f, "{{{}}} cannot be used here", v.name()),
            TemplateError::Wildcard => {
                f.write_str("a topic that is published to cannot hold +, # or NUL")
            }
            TemplateError::Empty => f.write_str("the template is empty"),
        }
    }
}

impl std::error::Error for TemplateError {}

/// Why a topic could not be rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenderError {
    /// The template names a placeholder the caller had no value for.
    Missing(Var),
    /// The topic would be longer than [`MAX_TOPIC_LEN`] bytes.
    TooLong,
}

impl fmt::Display for RenderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RenderError::Missing(v) => write!(f, "no value for {{{}}}", v.name()),
            RenderError::TooLong => write!(f, "the topic is longer than {MAX_TOPIC_LEN} bytes"),
        }
    }
}

impl std::error::Error for RenderError {}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(Var),
}

/// A parsed template: literal text and placeholders.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    parts: Vec<Part>,
    source: String,
}

impl Template {
    /// Parses `s`, accepting only the placeholders in `allowed`. `publish` is true for a topic
    /// that is published to, whose literal text may not hold wildcards.
    pub fn parse(s: &str, allowed: &[Var], publish: bool) -> Result<Template, TemplateError> {
        if s.is_empty() {
            return Err(TemplateError::Empty);
        }
        let mut parts = Vec::new();
        let mut rest = s;
        while !rest.is_empty() {
            match rest.find(['{', '}']) {
                None => {
                    parts.push(Part::Text(rest.to_owned()));
                    rest = "";
                }
                Some(i) if rest.as_bytes()[i] == b'}' => return Err(TemplateError::Unbalanced),
                Some(i) => {
                    if i > 0 {
                        parts.push(Part::Text(rest[..i].to_owned()));
                    }
                    let after = &rest[i + 1..];
                    let end = after.find('}').ok_or(TemplateError::Unbalanced)?;
                    let word = &after[..end];
                    if word.contains('{') {
                        return Err(TemplateError::Unbalanced);
                    }
                    let var = Var::parse(word)
                        .ok_or_else(|| TemplateError::UnknownPlaceholder(word.to_owned()))?;
                    if !allowed.contains(&var) {
                        return Err(TemplateError::NotHere(var));
                    }
                    parts.push(Part::Var(var));
                    rest = &after[end + 1..];
                }
            }
        }
        if publish
            && parts
                .iter()
                .any(|p| matches!(p, Part::Text(t) if t.contains(['+', '#', '\0'])))
        {
            return Err(TemplateError::Wildcard);
        }
        Ok(Template {
            parts,
            source: s.to_owned(),
        })
    }

    /// The text the template was parsed from.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the template uses `var`.
    pub fn uses(&self, var: Var) -> bool {
        self.parts.contains(&Part::Var(var))
    }

    /// The topic for these values, each value escaped (see the module doc). `value` returns
    /// `None` for a placeholder it has no value for.
    pub fn render<'a>(
        &self,
        value: impl Fn(Var) -> Option<&'a str>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => {
                    let s = value(*v).ok_or(RenderError::Missing(*v))?;
                    escape_into(s, out.is_empty(), &mut out);
                }
            }
            if out.len() > MAX_TOPIC_LEN {
                return Err(RenderError::TooLong);
            }
        }
        Ok(out)
    }

    /// Renders without escaping, for text that is not a topic (a Pavillion message name made
    /// from an MQTT topic, which may legitimately hold `+`-free topic text) or a filter made of
    /// operator-given values only.
    pub fn render_raw<'a>(
        &self,
        value: impl Fn(Var) -> Option<&'a str>,
    ) -> Result<String, RenderError> {
        let mut out = String::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Var(v) => out.push_str(value(*v).ok_or(RenderError::Missing(*v))?),
            }
        }
        if out.len() > MAX_TOPIC_LEN {
            return Err(RenderError::TooLong);
        }
        Ok(out)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

fn escape_into(s: &str, at_start: bool, out: &mut String) {
    for (i, c) in s.chars().enumerate() {
        match c {
            '%' => out.push_str("%25"),
            '+' => out.push_str("%2B"),
            '#' => out.push_str("%23"),
            '\0' => out.push_str("%00"),
            '$' if at_start && i == 0 => out.push_str("%24"),
            c => out.push(c),
        }
    }
}

/// Escapes one value as [`Template::render`] does (`at_start`: the value begins the topic).
pub fn escape(s: &str, at_start: bool) -> String {
    let mut out = String::with_capacity(s.len());
    escape_into(s, at_start, &mut out);
    out
}

/// Inverts [`escape`]: `None` if `s` holds a `%` that [`escape`] would not have written.
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let code = rest.get(i + 1..i + 3)?;
        out.push(match code {
            "25" => '%',
            "2B" => '+',
            "23" => '#',
            "00" => '\0',
            "24" => '$',
            _ => return None,
        });
        rest = &rest[i + 3..];
    }
    out.push_str(rest);
    Some(out)
}

/// Whether `filter` is a valid MQTT subscription filter (`+` a whole level, `#` the whole last
/// level, no NUL, not empty).
pub fn valid_filter(filter: &str) -> bool {
    if filter.is_empty() || filter.contains('\0') || filter.len() > MAX_TOPIC_LEN {
        return false;
    }
    let levels: Vec<&str> = filter.split('/').collect();
    levels.iter().enumerate().all(|(i, l)| {
        if l.contains('#') {
            *l == "#" && i == levels.len() - 1
        } else {
            !l.contains('+') || *l == "+"
        }
    })
}

/// Matches `topic` against `filter` (MQTT rules, including: a filter starting with a wildcard
/// does not match a topic starting with `$`). On a match, returns what the trailing `#`
/// matched (empty if nothing), else what the last `+` matched, else the empty string.
pub fn matches<'t>(filter: &str, topic: &'t str) -> Option<&'t str> {
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return None;
    }
    let mut f = filter.split('/');
    let mut offset = 0usize;
    let mut tail: &'t str = "";
    let mut t_levels = topic.split('/').peekable();
    loop {
        match (f.next(), t_levels.peek().copied()) {
            (Some("#"), _) => {
                // `a/#` matches `a` too (the parent level).
                return Some(topic.get(offset..).unwrap_or(""));
            }
            (Some("+"), Some(level)) => {
                tail = level;
                offset += level.len() + 1;
                t_levels.next();
            }
            (Some(fl), Some(level)) if fl == level => {
                offset += level.len() + 1;
                t_levels.next();
            }
            (None, None) => return Some(tail),
            _ => return None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quickcheck::quickcheck;

    const TOPIC_VARS: &[Var] = &[Var::Prefix, Var::Site, Var::Client, Var::Target, Var::Name];

    #[test]
    fn parses_and_renders() {
        let t =
            Template::parse("{prefix}/{site}/{client}/{target}/{name}", TOPIC_VARS, true).unwrap();
        let topic = t
            .render(|v| match v {
                Var::Prefix => Some("pav"),
                Var::Site => Some("plant-a"),
                Var::Client => Some("dev1"),
                Var::Target => Some("sensors"),
                Var::Name => Some("temp/+#"),
                _ => None,
            })
            .unwrap();
        assert_eq!(topic, "pav/plant-a/dev1/sensors/temp/%2B%23");
    }

    #[test]
    fn template_errors() {
        assert_eq!(
            Template::parse("a/{nope}", TOPIC_VARS, true),
            Err(TemplateError::UnknownPlaceholder("nope".into()))
        );
        assert_eq!(
            Template::parse("a/{bridge}", TOPIC_VARS, true),
            Err(TemplateError::NotHere(Var::Bridge))
        );
        assert_eq!(
            Template::parse("a/{name", TOPIC_VARS, true),
            Err(TemplateError::Unbalanced)
        );
        assert_eq!(
            Template::parse("a/}", TOPIC_VARS, true),
            Err(TemplateError::Unbalanced)
        );
        assert_eq!(
            Template::parse("a/#", TOPIC_VARS, true),
            Err(TemplateError::Wildcard)
        );
        assert!(Template::parse("a/#", TOPIC_VARS, false).is_ok());
        assert_eq!(
            Template::parse("", TOPIC_VARS, true),
            Err(TemplateError::Empty)
        );
    }

    #[test]
    fn missing_value() {
        let t = Template::parse("{site}/{name}", TOPIC_VARS, true).unwrap();
        assert_eq!(
            t.render(|v| (v == Var::Site).then_some("s")),
            Err(RenderError::Missing(Var::Name))
        );
    }

    #[test]
    fn leading_dollar_is_escaped() {
        let t = Template::parse("{name}/x", TOPIC_VARS, true).unwrap();
        assert_eq!(t.render(|_| Some("$SYS")).unwrap(), "%24SYS/x");
        let t = Template::parse("a/{name}", TOPIC_VARS, true).unwrap();
        assert_eq!(t.render(|_| Some("$SYS")).unwrap(), "a/$SYS");
    }

    #[test]
    fn filters() {
        assert_eq!(matches("pav/s/cmd/#", "pav/s/cmd/a/b"), Some("a/b"));
        assert_eq!(matches("pav/s/cmd/#", "pav/s/cmd"), Some(""));
        assert_eq!(matches("pav/+/cmd", "pav/x/cmd"), Some("x"));
        assert_eq!(matches("pav/+/cmd", "pav/x/y"), None);
        assert_eq!(matches("pav/a", "pav/a/b"), None);
        assert_eq!(matches("pav/a/b", "pav/a"), None);
        assert_eq!(matches("#", "$SYS/x"), None);
        assert_eq!(matches("+/x", "$SYS/x"), None);
        assert!(valid_filter("a/+/#"));
        assert!(!valid_filter("a/b#"));
        assert!(!valid_filter("a/#/b"));
        assert!(!valid_filter("a/x+"));
        assert!(!valid_filter(""));
    }

    quickcheck! {
        // No value can put a wildcard or NUL into a rendered topic, nor make it start with `$`.
        fn rendered_topics_hold_no_wildcards(a: String, b: String) -> bool {
            let t = Template::parse("{target}/x/{name}", TOPIC_VARS, true).unwrap();
            match t.render(|v| if v == Var::Target { Some(a.as_str()) } else { Some(b.as_str()) }) {
                Ok(s) => !s.contains(['+', '#', '\0']) && !s.starts_with('$'),
                Err(e) => e == RenderError::TooLong,
            }
        }

        // The escape is injective: two different names never share a topic.
        fn escape_round_trips(s: String, at_start: bool) -> bool {
            unescape(&escape(&s, at_start)).as_deref() == Some(s.as_str())
        }

        // A rendered topic is matched by the filter made of the same literal with `+` for the
        // value, and the `+` yields the escaped value back.
        fn rendered_topic_matches_its_filter(name: String) -> bool {
            if name.contains('/') || name.is_empty() {
                return true;
            }
            let t = Template::parse("pav/{name}", TOPIC_VARS, true).unwrap();
            let topic = t.render(|_| Some(name.as_str())).unwrap();
            matches("pav/+", &topic).and_then(unescape).as_deref() == Some(name.as_str())
        }
    }
}
