//! The lenient XML reader: turns the bytes of a message into a small tree of elements,
//! text and comments, resolving namespaces the forgiving way real edXML traffic needs.
//!
//! What it forgives: bytes before `<?xml` (a BOM, stray characters), CRLF and lone CR
//! (normalised to LF as XML 1.0 says), an `edXML:` prefix used without being declared
//! (it is taken as the QCVN 102:2016 namespace), other undeclared prefixes (kept, with no
//! namespace), and anything after the root element. What it does not forgive: malformed
//! markup, unknown entities, invalid UTF-8, a tree beyond the [`crate::limits`] — each
//! reported with its line and column. The tree is built without recursion, and the depth
//! limit bounds every recursive walk of it (copy, comparison, canonicalization, writing,
//! drop).
//!
//! Text borrows from the input whenever it needs no normalisation, so a large base64
//! attachment is not copied when the tree is built.

use std::borrow::Cow;

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::reader::Reader;

use crate::error::ParseError;
use crate::limits::Limits;

/// The namespace of QCVN 102:2016 (edXML).
pub const EDXML_NS: &str = "http://www.mic.gov.vn/TBT/QCVN_102_2016";
/// The XML-DSig namespace.
pub const DSIG_NS: &str = "http://www.w3.org/2000/09/xmldsig#";
/// The namespace the `xml:` prefix is always bound to.
const XML_NS: &str = "http://www.w3.org/XML/1998/namespace";

/// An element as read from (or to be written into) a message: used for the parts edXML
/// messages carry that lienthong does not model — unknown elements and the XML-DSig
/// `Signature` — so that they can be written back.
///
/// Equality compares what the element means (namespace, local name, attributes,
/// children), not how it was spelled: prefixes and namespace declarations may change when
/// it is written again.
#[derive(Clone, Debug)]
pub struct Element<'a> {
    /// The prefix as written, if any.
    pub prefix: Option<String>,
    pub local: String,
    /// The resolved namespace; `None` for no namespace (or an undeclared prefix).
    pub ns: Option<String>,
    pub attrs: Vec<Attribute>,
    /// Namespace declarations written on this element (`""` is the default namespace).
    pub ns_decls: Vec<(String, String)>,
    pub children: Vec<Node<'a>>,
    /// Line (1-based) of the start tag in the input; 0 when built in memory.
    pub line: u32,
    /// Column (1-based, in characters) of the start tag.
    pub column: u32,
}

/// An owned element, as kept in a parsed message.
pub type XmlElement = Element<'static>;

/// An attribute; namespace declarations are not attributes (see [`Element::ns_decls`]).
#[derive(Clone, Debug)]
pub struct Attribute {
    pub prefix: Option<String>,
    pub local: String,
    pub ns: Option<String>,
    /// The normalised value (entities resolved).
    pub value: String,
}

/// A child of an element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Node<'a> {
    Element(Element<'a>),
    /// Character data (CDATA included), line ends normalised, entities resolved.
    Text(Cow<'a, str>),
    Comment(Cow<'a, str>),
}

impl PartialEq for Element<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.ns == other.ns
            && self.local == other.local
            && (self.ns.is_some() || self.prefix == other.prefix)
            && self.attrs == other.attrs
            && self.children == other.children
    }
}
impl Eq for Element<'_> {}

impl PartialEq for Attribute {
    fn eq(&self, other: &Self) -> bool {
        self.ns == other.ns
            && self.local == other.local
            && (self.ns.is_some() || self.prefix == other.prefix)
            && self.value == other.value
    }
}
impl Eq for Attribute {}

impl<'a> Element<'a> {
    /// A new element without attributes or children.
    pub fn new(ns: Option<&str>, prefix: Option<&str>, local: &str) -> Self {
        Element {
            prefix: prefix.map(str::to_string),
            local: local.to_string(),
            ns: ns.map(str::to_string),
            attrs: Vec::new(),
            ns_decls: Vec::new(),
            children: Vec::new(),
            line: 0,
            column: 0,
        }
    }

    /// The qualified name as written.
    pub fn qname(&self) -> String {
        match &self.prefix {
            Some(p) => format!("{p}:{}", self.local),
            None => self.local.clone(),
        }
    }

    /// Whether this element is `local` in the edXML namespace — or in no namespace at
    /// all, which lenient reading accepts.
    pub fn is_edxml(&self, local: &str) -> bool {
        self.local == local && is_edxml_ns(self.ns.as_deref())
    }

    /// The child elements, in order.
    pub fn elements(&self) -> impl Iterator<Item = &Element<'a>> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            _ => None,
        })
    }

    /// The first child element named `local` in the edXML namespace.
    pub fn child(&self, local: &str) -> Option<&Element<'a>> {
        self.elements().find(|e| e.is_edxml(local))
    }

    /// Whether any child is an element.
    pub fn has_element_children(&self) -> bool {
        self.elements().next().is_some()
    }

    /// The concatenated text children, trimmed.
    pub fn text(&self) -> String {
        let mut s = String::new();
        for n in &self.children {
            if let Node::Text(t) = n {
                s.push_str(t);
            }
        }
        let t = s.trim();
        if t.len() == s.len() { s } else { t.to_string() }
    }

    /// The value of the attribute `local` (any namespace).
    pub fn attr(&self, local: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|a| a.local == local)
            .map(|a| a.value.as_str())
    }

    /// A copy that owns all its text.
    pub fn to_owned_element(&self) -> XmlElement {
        Element {
            prefix: self.prefix.clone(),
            local: self.local.clone(),
            ns: self.ns.clone(),
            attrs: self.attrs.clone(),
            ns_decls: self.ns_decls.clone(),
            children: self
                .children
                .iter()
                .map(|n| match n {
                    Node::Element(e) => Node::Element(e.to_owned_element()),
                    Node::Text(t) => Node::Text(Cow::Owned(t.to_string())),
                    Node::Comment(t) => Node::Comment(Cow::Owned(t.to_string())),
                })
                .collect(),
            line: self.line,
            column: self.column,
        }
    }

    /// Finds the first descendant-or-self element satisfying `pred`, depth first.
    pub fn find(&self, pred: &dyn Fn(&Element<'a>) -> bool) -> Option<&Element<'a>> {
        if pred(self) {
            return Some(self);
        }
        self.elements().find_map(|e| e.find(pred))
    }
}

/// Whether `ns` is the edXML namespace, leniently: no namespace, or the QCVN URI with any
/// case and an optional trailing slash.
pub fn is_edxml_ns(ns: Option<&str>) -> bool {
    match ns {
        None => true,
        Some(ns) => ns
            .trim()
            .trim_end_matches('/')
            .eq_ignore_ascii_case(EDXML_NS),
    }
}

/// Where the markup starts: the `<?xml` declaration if it appears near the start, else
/// the first `<`. Anything before it (a BOM, stray bytes) is skipped.
pub(crate) fn markup_start(input: &[u8]) -> usize {
    let head = &input[..input.len().min(4096)];
    if let Some(i) = head.windows(5).position(|w| w == b"<?xml") {
        return i;
    }
    input.iter().position(|&b| b == b'<').unwrap_or(input.len())
}

/// Counts lines and columns over bytes fed in order, looking at each byte once: the
/// position after everything fed so far is known at any time, without going back to the
/// start of the line (which made positions on one long line cost the square of its
/// length).
#[derive(Clone, Copy, Debug)]
pub(crate) struct LineCounter {
    line: u32,
    /// Characters between the start of the line and the end of what was fed.
    chars_in_line: u32,
    /// Bytes fed so far.
    fed: u64,
}

impl LineCounter {
    pub(crate) fn new() -> Self {
        LineCounter {
            line: 1,
            chars_in_line: 0,
            fed: 0,
        }
    }

    /// Takes in the next bytes of the input.
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        self.fed += bytes.len() as u64;
        let tail = match bytes.iter().rposition(|&b| b == b'\n') {
            Some(last) => {
                let newlines = bytes[..=last].iter().filter(|&&b| b == b'\n').count();
                self.line = self.line.saturating_add(newlines as u32);
                self.chars_in_line = 0;
                &bytes[last + 1..]
            }
            None => bytes,
        };
        // A character is a byte that does not continue a UTF-8 sequence.
        let chars = tail.iter().filter(|&&b| b & 0xC0 != 0x80).count();
        self.chars_in_line = self.chars_in_line.saturating_add(chars as u32);
    }

    /// Line and column (1-based, the column in characters) of the next byte.
    pub(crate) fn position(&self) -> (u32, u32) {
        (self.line, self.chars_in_line.saturating_add(1))
    }

    /// Bytes fed so far: each byte of the input once when positions are asked in order.
    pub(crate) fn fed(&self) -> u64 {
        self.fed
    }
}

/// Turns byte offsets into 1-based lines and columns. Offsets are asked in increasing
/// order while a message is read, so the input is counted once whatever the number of
/// positions asked; an offset before the last one (an error's position inside the last
/// event) counts again from the start, once.
pub(crate) struct Lines<'a> {
    input: &'a [u8],
    /// The offset `counter` has reached.
    pos: usize,
    counter: LineCounter,
    /// Bytes counted before a restart.
    restarted: u64,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Lines {
            input,
            pos: 0,
            counter: LineCounter::new(),
            restarted: 0,
        }
    }

    /// Line and column of `offset`.
    pub(crate) fn at(&mut self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.input.len());
        if offset < self.pos {
            self.restarted += self.counter.fed();
            self.counter = LineCounter::new();
            self.pos = 0;
        }
        self.counter.feed(&self.input[self.pos..offset]);
        self.pos = offset;
        self.counter.position()
    }

    /// Bytes looked at so far.
    #[cfg(test)]
    fn scanned(&self) -> u64 {
        self.restarted + self.counter.fed()
    }
}

/// Reads the whole message into a tree within `limits` and returns its root element.
pub(crate) fn read(input: &[u8], limits: Limits) -> Result<Element<'_>, ParseError> {
    read_counting(input, limits, &mut Lines::new(input))
}

/// [`read`], with the positions counted by `lines`.
fn read_counting<'a>(
    input: &'a [u8],
    limits: Limits,
    lines: &mut Lines<'a>,
) -> Result<Element<'a>, ParseError> {
    let start = markup_start(input);
    let text = std::str::from_utf8(&input[start..]).map_err(|e| {
        let (line, column) = lines.at(start + e.valid_up_to());
        ParseError::new(
            line,
            column,
            "the message is not valid UTF-8 (edXML must be UTF-8 encoded)",
        )
    })?;
    if text.trim().is_empty() {
        let (line, column) = lines.at(input.len());
        return Err(ParseError::new(
            line,
            column,
            "the input holds no XML: an edXML message starts with <?xml or <edXML",
        ));
    }
    let mut reader = Reader::from_str(text);
    reader.config_mut().check_end_names = true;
    let mut tree = Builder::new(limits);
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            let (line, column) = lines.at(start + reader.error_position() as usize);
            ParseError::new(line, column, format!("malformed XML: {e}"))
        })?;
        if tree.push(event, &mut || lines.at(start + at))? {
            break;
        }
    }
    tree.finish(&mut || lines.at(input.len()))
}

/// The text an entity or character reference stands for.
pub(crate) fn resolve_reference(r: &BytesRef<'_>) -> Result<String, String> {
    match r.resolve_char_ref() {
        Ok(Some(c)) => Ok(c.to_string()),
        Ok(None) => match quick_xml::escape::resolve_predefined_entity(r) {
            Some(s) => Ok(s.to_string()),
            None => Err(format!(
                "unknown entity &{};: only &lt; &gt; &amp; &apos; &quot; and character references are allowed",
                &**r
            )),
        },
        Err(e) => Err(format!("bad character reference &{};: {e}", &**r)),
    }
}

/// Builds the tree from the reader's events, within its limits.
pub(crate) struct Builder<'a> {
    limits: Limits,
    /// The element being built at each depth.
    stack: Vec<Element<'a>>,
    /// The namespaces declared at each depth.
    scopes: Vec<Vec<(String, String)>>,
    /// Declarations in `scopes` altogether.
    in_scope: usize,
    /// Elements and comments read so far.
    elements: usize,
    /// Attributes and namespace declarations read so far.
    attributes: usize,
    root: Option<Element<'a>>,
}

/// The line and column of the event being handled, computed only when needed.
pub(crate) type Position<'p> = dyn FnMut() -> (u32, u32) + 'p;

/// What to tell the author of a file the limits refuse.
const OVER_LIMIT: &str = "check the program that wrote this file";

impl<'a> Builder<'a> {
    pub(crate) fn new(limits: Limits) -> Self {
        Builder {
            limits,
            stack: Vec::new(),
            scopes: Vec::new(),
            in_scope: 0,
            elements: 0,
            attributes: 0,
            root: None,
        }
    }

    /// Handles one event; true once the root element is complete (or the input ends).
    pub(crate) fn push(
        &mut self,
        event: Event<'a>,
        pos: &mut Position<'_>,
    ) -> Result<bool, ParseError> {
        match event {
            Event::Start(s) => {
                let (line, column) = pos();
                let el = self.start_element(&s, line, column)?;
                self.stack.push(el);
            }
            Event::Empty(s) => {
                let (line, column) = pos();
                let el = self.start_element(&s, line, column)?;
                self.pop_scope();
                self.attach(el);
            }
            Event::End(_) => {
                self.pop_scope();
                if let Some(el) = self.stack.pop() {
                    self.attach(el);
                }
            }
            Event::Text(t) => {
                if let Some(el) = self.stack.last_mut() {
                    push_text(el, t.xml10_content());
                } else if self.root.is_none() && !t.xml10_content().trim().is_empty() {
                    let (line, column) = pos();
                    return Err(ParseError::new(
                        line,
                        column,
                        "text before the root element: expected <edXML>",
                    ));
                }
            }
            Event::CData(t) => {
                if let Some(el) = self.stack.last_mut() {
                    push_text(el, t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let Some(el) = self.stack.last_mut() else {
                    return Ok(false);
                };
                let resolved = resolve_reference(&r).map_err(|reason| {
                    let (line, column) = pos();
                    ParseError::new(line, column, reason)
                })?;
                push_text(el, Cow::Owned(resolved));
            }
            Event::Comment(c) => {
                if !self.stack.is_empty() {
                    self.count_element(pos)?;
                }
                if let Some(el) = self.stack.last_mut() {
                    el.children.push(Node::Comment(c.xml10_content()));
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => return Ok(true),
        }
        // Whatever follows the root (trailing bytes, NULs) is not the message.
        Ok(self.root.is_some() && self.stack.is_empty())
    }

    /// The root, once the input is read; `end` is the position of the end of the input.
    pub(crate) fn finish(self, end: &mut Position<'_>) -> Result<Element<'a>, ParseError> {
        if let Some(open) = self.stack.last() {
            let (line, column) = end();
            return Err(ParseError::new(
                line,
                column,
                format!(
                    "the message ends inside <{}> opened at line {}: the file is truncated",
                    open.qname(),
                    open.line
                ),
            ));
        }
        self.root.ok_or_else(|| {
            let (line, column) = end();
            ParseError::new(line, column, "no root element: expected <edXML>")
        })
    }

    /// The elements open, the root first.
    pub(crate) fn open(&self) -> &[Element<'a>] {
        &self.stack
    }

    /// The element the last `Start` (`empty` false) or `Empty` event made.
    pub(crate) fn last_started(&self, empty: bool) -> Option<&Element<'a>> {
        if !empty {
            return self.stack.last();
        }
        match self.stack.last() {
            // Just attached: the last child.
            Some(parent) => match parent.children.last() {
                Some(Node::Element(e)) => Some(e),
                _ => None,
            },
            None => self.root.as_ref(),
        }
    }

    fn attach(&mut self, el: Element<'a>) {
        match self.stack.last_mut() {
            Some(parent) => parent.children.push(Node::Element(el)),
            None => self.root = Some(el),
        }
    }

    fn pop_scope(&mut self) {
        if let Some(scope) = self.scopes.pop() {
            self.in_scope -= scope.len();
        }
    }

    fn count_element(&mut self, pos: &mut Position<'_>) -> Result<(), ParseError> {
        self.elements += 1;
        if self.elements > self.limits.elements {
            let (line, column) = pos();
            return Err(ParseError::new(
                line,
                column,
                format!(
                    "the message has more than {} elements (comments included), the most lienthong reads: {OVER_LIMIT}",
                    self.limits.elements
                ),
            ));
        }
        Ok(())
    }

    /// Builds an element from its start tag, within the limits, and pushes its namespace
    /// scope.
    fn start_element(
        &mut self,
        s: &BytesStart<'_>,
        line: u32,
        column: u32,
    ) -> Result<Element<'a>, ParseError> {
        let err = |reason: String| ParseError::new(line, column, reason);
        let limits = self.limits;
        let name_ok = |name: &str| {
            if name.len() > limits.name_bytes {
                Err(err(format!(
                    "a name of {} bytes, longer than the {} bytes lienthong reads: {OVER_LIMIT}",
                    name.len(),
                    limits.name_bytes
                )))
            } else {
                Ok(())
            }
        };
        name_ok(s.name().as_ref())?;
        let qname = s.name().as_ref().to_string();
        if self.stack.len() >= limits.depth {
            return Err(err(format!(
                "<{qname}> is nested deeper than {} levels, the most lienthong reads (real edXML is 10 to 20 deep): {OVER_LIMIT}",
                limits.depth
            )));
        }
        self.count_element(&mut || (line, column))?;
        let mut decls = Vec::new();
        let mut raw_attrs = Vec::new();
        for a in s.attributes().with_checks(false) {
            let a = a.map_err(|e| err(format!("malformed attribute: {e}")))?;
            name_ok(a.key.as_ref())?;
            self.attributes += 1;
            if self.attributes > limits.attributes {
                return Err(err(format!(
                    "the message has more than {} attributes (namespace declarations included), the most lienthong reads: {OVER_LIMIT}",
                    limits.attributes
                )));
            }
            let key = a.key.as_ref().to_string();
            let value = a
                .normalized_value(quick_xml::XmlVersion::Implicit1_0)
                .map_err(|e| err(format!("bad value of attribute {key}: {e}")))?
                .into_owned();
            if key == "xmlns" {
                decls.push((String::new(), value));
            } else if let Some(p) = key.strip_prefix("xmlns:") {
                decls.push((p.to_string(), value));
            } else {
                raw_attrs.push((key, value));
            }
        }
        self.in_scope += decls.len();
        self.scopes.push(decls.clone());
        if self.in_scope > limits.namespaces_in_scope {
            return Err(err(format!(
                "more than {} namespace declarations are in scope at <{qname}>, the most lienthong reads: {OVER_LIMIT}",
                limits.namespaces_in_scope
            )));
        }
        let scopes = &self.scopes;
        let (prefix, local) = split_qname(&qname);
        let ns = resolve(scopes, prefix.unwrap_or(""));
        let attrs = raw_attrs
            .into_iter()
            .map(|(key, value)| {
                let (prefix, local) = split_qname(&key);
                Attribute {
                    ns: prefix.and_then(|p| resolve(scopes, p)),
                    prefix: prefix.map(str::to_string),
                    local: local.to_string(),
                    value,
                }
            })
            .collect();
        Ok(Element {
            prefix: prefix.map(str::to_string),
            local: local.to_string(),
            ns,
            attrs,
            ns_decls: decls,
            children: Vec::new(),
            line,
            column,
        })
    }
}

fn push_text<'a>(el: &mut Element<'a>, piece: Cow<'a, str>) {
    if piece.is_empty() {
        return;
    }
    if let Some(Node::Text(t)) = el.children.last_mut() {
        t.to_mut().push_str(&piece);
    } else {
        el.children.push(Node::Text(piece));
    }
}

fn split_qname(q: &str) -> (Option<&str>, &str) {
    match q.split_once(':') {
        Some((p, l)) if !p.is_empty() && !l.is_empty() => (Some(p), l),
        _ => (None, q),
    }
}

/// Resolves a prefix (`""` for the default namespace) against the scopes, innermost first.
fn resolve(scopes: &[Vec<(String, String)>], prefix: &str) -> Option<String> {
    if prefix == "xml" {
        return Some(XML_NS.to_string());
    }
    for scope in scopes.iter().rev() {
        if let Some((_, uri)) = scope.iter().rev().find(|(p, _)| p == prefix) {
            return (!uri.is_empty()).then(|| uri.clone());
        }
    }
    // Real messages use `edXML:` on elements outside the element that declares it.
    prefix
        .eq_ignore_ascii_case("edxml")
        .then(|| EDXML_NS.to_string())
}

/// The namespaces in scope at `target` (found by identity) inside `root`, outermost
/// first, later declarations of a prefix replacing earlier ones.
pub(crate) fn in_scope_at(root: &Element<'_>, target: &Element<'_>) -> Vec<(String, String)> {
    fn walk(el: &Element<'_>, target: &Element<'_>, acc: &mut Vec<(String, String)>) -> bool {
        let mark = acc.len();
        acc.extend(el.ns_decls.iter().cloned());
        if std::ptr::eq(el, target) {
            return true;
        }
        if el.elements().any(|c| walk(c, target, acc)) {
            return true;
        }
        acc.truncate(mark);
        false
    }
    let mut acc = Vec::new();
    walk(root, target, &mut acc);
    let mut out: Vec<(String, String)> = Vec::new();
    for (p, u) in acc {
        out.retain(|(q, _)| *q != p);
        out.push((p, u));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_on_one_long_line_look_at_each_byte_once() {
        // 50,000 elements on one line: every start tag asks for its position. Counting
        // from the start of the line each time looked at 50,000²/2 × 4 bytes.
        let n = 50_000;
        let input = format!("<r>{}</r>", "<a/>".repeat(n));
        let mut lines = Lines::new(input.as_bytes());
        let root = read_counting(input.as_bytes(), Limits::INPUT, &mut lines).unwrap();
        assert_eq!(root.children.len(), n);
        assert!(
            lines.scanned() <= input.len() as u64,
            "{} bytes looked at for an input of {}",
            lines.scanned(),
            input.len()
        );
        let Node::Element(last) = root.children.last().unwrap() else {
            panic!("an element")
        };
        assert_eq!((last.line, last.column), (1, 4 + 4 * (n as u32 - 1)));
    }

    #[test]
    fn columns_count_characters_on_a_long_line_and_restart_after_a_newline() {
        // "ế" is 3 bytes, one character.
        let input = format!(
            "<r>{}<a/>\r\n  <b/>{}<c/></r>",
            "<t>ế</t>".repeat(1000),
            "ế".repeat(10)
        );
        let root = read(input.as_bytes(), Limits::INPUT).unwrap();
        let at = |local: &str| {
            let e = root.elements().find(|e| e.local == local).unwrap();
            (e.line, e.column)
        };
        assert_eq!(at("a"), (1, 4 + 8 * 1000));
        assert_eq!(at("b"), (2, 3));
        assert_eq!(at("c"), (2, 3 + 4 + 10));
        let e = read(b"<r>\n  <a></b></r>", Limits::INPUT).unwrap_err();
        assert_eq!((e.line, e.column), (2, 6), "{e}");
        // An offset before the last one asked is counted again from the start.
        let mut lines = Lines::new("ab\ncdế\nf".as_bytes());
        assert_eq!(lines.at(8), (2, 4));
        assert_eq!(lines.at(4), (2, 2));
        assert_eq!(lines.at(100), (3, 2));
    }
}
