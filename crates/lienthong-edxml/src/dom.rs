//! The lenient XML reader: turns the bytes of a message into a small tree of elements,
//! text and comments, resolving namespaces the forgiving way real edXML traffic needs.
//!
//! What it forgives: bytes before `<?xml` (a BOM, stray characters), CRLF and lone CR
//! (normalised to LF as XML 1.0 says), an `edXML:` prefix used without being declared
//! (it is taken as the QCVN 102:2016 namespace), other undeclared prefixes (kept, with no
//! namespace), and anything after the root element. What it does not forgive: malformed
//! markup, unknown entities, invalid UTF-8 — each reported with its line and column.
//!
//! Text borrows from the input whenever it needs no normalisation, so a large base64
//! attachment is not copied when the tree is built.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, Event};
use quick_xml::reader::Reader;

use crate::error::ParseError;

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

/// Turns byte offsets into 1-based lines and columns, moving forward only, so that the
/// whole input is scanned once however many positions are asked for.
pub(crate) struct Lines<'a> {
    input: &'a [u8],
    pos: usize,
    line: u32,
    line_start: usize,
}

impl<'a> Lines<'a> {
    pub(crate) fn new(input: &'a [u8]) -> Self {
        Lines {
            input,
            pos: 0,
            line: 1,
            line_start: 0,
        }
    }

    /// Line and column of `offset`; offsets before the last one asked restart the scan.
    pub(crate) fn at(&mut self, offset: usize) -> (u32, u32) {
        let offset = offset.min(self.input.len());
        if offset < self.pos {
            *self = Lines::new(self.input);
        }
        for (i, &b) in self.input[self.pos..offset].iter().enumerate() {
            if b == b'\n' {
                self.line += 1;
                self.line_start = self.pos + i + 1;
            }
        }
        self.pos = offset;
        let col = String::from_utf8_lossy(&self.input[self.line_start..offset])
            .chars()
            .count() as u32
            + 1;
        (self.line, col)
    }
}

/// Reads the whole message into a tree and returns its root element.
pub(crate) fn read(input: &[u8]) -> Result<Element<'_>, ParseError> {
    let start = markup_start(input);
    let mut lines = Lines::new(input);
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

    // The element being built at each depth, and the namespaces in scope at each depth.
    let mut stack: Vec<Element<'_>> = Vec::new();
    let mut scopes: Vec<Vec<(String, String)>> = Vec::new();
    let mut root: Option<Element<'_>> = None;
    loop {
        let at = reader.buffer_position() as usize;
        let event = reader.read_event().map_err(|e| {
            let (line, column) = lines.at(start + reader.error_position() as usize);
            ParseError::new(line, column, format!("malformed XML: {e}"))
        })?;
        let pos = |lines: &mut Lines<'_>| lines.at(start + at);
        match event {
            Event::Start(s) => {
                let (line, column) = pos(&mut lines);
                let el = start_element(&s, &mut scopes, line, column)?;
                stack.push(el);
            }
            Event::Empty(s) => {
                let (line, column) = pos(&mut lines);
                let el = start_element(&s, &mut scopes, line, column)?;
                scopes.pop();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(Node::Element(el)),
                    None => root = Some(el),
                }
            }
            Event::End(_) => {
                scopes.pop();
                if let Some(el) = stack.pop() {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(Node::Element(el)),
                        None => root = Some(el),
                    }
                }
            }
            Event::Text(t) => {
                if let Some(el) = stack.last_mut() {
                    push_text(el, t.xml10_content());
                } else if root.is_none() && !t.xml10_content().trim().is_empty() {
                    let (line, column) = pos(&mut lines);
                    return Err(ParseError::new(
                        line,
                        column,
                        "text before the root element: expected <edXML>",
                    ));
                }
            }
            Event::CData(t) => {
                if let Some(el) = stack.last_mut() {
                    push_text(el, t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                let Some(el) = stack.last_mut() else { continue };
                let resolved = match r.resolve_char_ref() {
                    Ok(Some(c)) => c.to_string(),
                    Ok(None) => match quick_xml::escape::resolve_predefined_entity(&r) {
                        Some(s) => s.to_string(),
                        None => {
                            let (line, column) = pos(&mut lines);
                            return Err(ParseError::new(
                                line,
                                column,
                                format!(
                                    "unknown entity &{};: only &lt; &gt; &amp; &apos; &quot; and character references are allowed",
                                    &*r
                                ),
                            ));
                        }
                    },
                    Err(e) => {
                        let (line, column) = pos(&mut lines);
                        return Err(ParseError::new(
                            line,
                            column,
                            format!("bad character reference &{};: {e}", &*r),
                        ));
                    }
                };
                push_text(el, Cow::Owned(resolved));
            }
            Event::Comment(c) => {
                if let Some(el) = stack.last_mut() {
                    el.children.push(Node::Comment(c.xml10_content()));
                }
            }
            Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
            Event::Eof => break,
        }
        if root.is_some() && stack.is_empty() {
            // Whatever follows the root (trailing bytes, NULs) is not the message.
            break;
        }
    }
    if let Some(open) = stack.last() {
        let (line, column) = lines.at(input.len());
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
    root.ok_or_else(|| {
        let (line, column) = lines.at(input.len());
        ParseError::new(line, column, "no root element: expected <edXML>")
    })
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

/// Builds an element from its start tag and pushes its namespace scope.
fn start_element<'a>(
    s: &BytesStart<'_>,
    scopes: &mut Vec<Vec<(String, String)>>,
    line: u32,
    column: u32,
) -> Result<Element<'a>, ParseError> {
    let err = |reason: String| ParseError::new(line, column, reason);
    let mut decls = Vec::new();
    let mut raw_attrs = Vec::new();
    for a in s.attributes().with_checks(false) {
        let a = a.map_err(|e| err(format!("malformed attribute: {e}")))?;
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
    scopes.push(decls.clone());
    let qname = s.name().as_ref().to_string();
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
