//! XML canonicalization of an element tree, for XML-DSig: Canonical XML 1.0 (inclusive,
//! `http://www.w3.org/TR/2001/REC-xml-c14n-20010315`) and Exclusive XML Canonicalization
//! 1.0 (`http://www.w3.org/2001/10/xml-exc-c14n#`), with or without comments.
//!
//! The subset edXML needs: a whole document or one element subtree, optionally minus one
//! element (the enveloped-signature transform). Not supported: DTD-declared default
//! attributes, inherited `xml:*` attributes at a subset apex, processing instructions
//! (the reader drops them). Output is streamed to an `io::Write` (a digest), so the
//! canonical form of a large attachment is never held in memory.

use std::io::{self, Write};

use crate::dom::{Element, Node};

/// A canonicalization algorithm.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Method {
    Inclusive {
        comments: bool,
    },
    /// `prefixes` is the InclusiveNamespaces PrefixList (`#default` for the default
    /// namespace).
    Exclusive {
        comments: bool,
        prefixes: Vec<String>,
    },
}

impl Method {
    /// The algorithm an XML-DSig URI names; `None` for one this module does not
    /// implement. The non-standard `http://www.w3.org/TR/xml-exc-c14n#`, which real edXML
    /// signatures use, is read as exclusive canonicalization.
    pub fn from_uri(uri: &str) -> Option<Method> {
        let exclusive = |comments| Method::Exclusive {
            comments,
            prefixes: Vec::new(),
        };
        Some(match uri.trim() {
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315" => {
                Method::Inclusive { comments: false }
            }
            "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments" => {
                Method::Inclusive { comments: true }
            }
            "http://www.w3.org/2001/10/xml-exc-c14n#" | "http://www.w3.org/TR/xml-exc-c14n#" => {
                exclusive(false)
            }
            "http://www.w3.org/2001/10/xml-exc-c14n#WithComments" => exclusive(true),
            _ => return None,
        })
    }

    fn comments(&self) -> bool {
        match self {
            Method::Inclusive { comments } | Method::Exclusive { comments, .. } => *comments,
        }
    }
}

/// Writes the canonical form of `apex` and its descendants, leaving out `exclude` (by
/// identity) and its subtree. `scope` is every namespace in scope at `apex`, its own
/// declarations included (see [`crate::dom`]'s `in_scope_at`).
pub fn canonicalize(
    out: &mut dyn Write,
    apex: &Element<'_>,
    scope: &[(String, String)],
    exclude: Option<&Element<'_>>,
    method: &Method,
) -> io::Result<()> {
    let mut c = Canon {
        out,
        exclude: exclude.map(|e| e as *const Element<'_> as usize),
        method,
    };
    c.element(apex, scope, &[])
}

struct Canon<'o, 'm> {
    out: &'o mut dyn Write,
    /// The excluded element's address: compared, never dereferenced.
    exclude: Option<usize>,
    method: &'m Method,
}

fn get<'s>(map: &'s [(String, String)], prefix: &str) -> Option<&'s str> {
    map.iter()
        .rev()
        .find(|(p, _)| p == prefix)
        .map(|(_, u)| u.as_str())
}

fn set(map: &mut Vec<(String, String)>, prefix: &str, uri: &str) {
    map.retain(|(p, _)| p != prefix);
    map.push((prefix.to_string(), uri.to_string()));
}

impl Canon<'_, '_> {
    /// `scope`: namespaces in scope at `el`; `rendered`: namespaces in effect in the
    /// output at the parent.
    fn element(
        &mut self,
        el: &Element<'_>,
        scope: &[(String, String)],
        rendered: &[(String, String)],
    ) -> io::Result<()> {
        let mut to_render: Vec<(String, String)> = Vec::new();
        let needs = |p: &str, u: &str| {
            let current = get(rendered, p).unwrap_or("");
            current != u
        };
        match self.method {
            Method::Inclusive { .. } => {
                for (p, u) in scope {
                    if p == "xml" || (u.is_empty() && !p.is_empty()) {
                        continue;
                    }
                    if needs(p, u) {
                        to_render.push((p.clone(), u.clone()));
                    }
                }
            }
            Method::Exclusive { prefixes, .. } => {
                let mut used: Vec<&str> = vec![el.prefix.as_deref().unwrap_or("")];
                for a in &el.attrs {
                    if let Some(p) = &a.prefix {
                        used.push(p);
                    }
                }
                for p in prefixes {
                    used.push(if p == "#default" { "" } else { p });
                }
                for p in used {
                    if p == "xml" {
                        continue;
                    }
                    let u = get(scope, p).unwrap_or("");
                    if (u.is_empty() && !p.is_empty()) || to_render.iter().any(|(q, _)| q == p) {
                        continue;
                    }
                    if needs(p, u) {
                        to_render.push((p.to_string(), u.to_string()));
                    }
                }
            }
        }
        to_render.sort_by(|a, b| a.0.cmp(&b.0));
        let mut s = format!("<{}", el.qname());
        for (p, u) in &to_render {
            if p.is_empty() {
                s.push_str(&format!(" xmlns=\"{}\"", escape_attr(u)));
            } else {
                s.push_str(&format!(" xmlns:{p}=\"{}\"", escape_attr(u)));
            }
        }
        let mut attrs: Vec<_> = el.attrs.iter().collect();
        attrs.sort_by(|a, b| {
            (a.ns.as_deref().unwrap_or(""), a.local.as_str())
                .cmp(&(b.ns.as_deref().unwrap_or(""), b.local.as_str()))
        });
        for a in attrs {
            let name = match &a.prefix {
                Some(p) => format!("{p}:{}", a.local),
                None => a.local.clone(),
            };
            s.push_str(&format!(" {name}=\"{}\"", escape_attr(&a.value)));
        }
        s.push('>');
        self.out.write_all(s.as_bytes())?;

        let mut now_rendered = rendered.to_vec();
        for (p, u) in &to_render {
            set(&mut now_rendered, p, u);
        }
        for child in &el.children {
            match child {
                Node::Element(e) => {
                    if self.exclude == Some(e as *const Element<'_> as usize) {
                        continue;
                    }
                    let mut child_scope = scope.to_vec();
                    for (p, u) in &e.ns_decls {
                        set(&mut child_scope, p, u);
                    }
                    self.element(e, &child_scope, &now_rendered)?;
                }
                Node::Text(t) => self.text(t)?,
                Node::Comment(c) if self.method.comments() => {
                    write!(self.out, "<!--{c}-->")?;
                }
                Node::Comment(_) => {}
            }
        }
        write!(self.out, "</{}>", el.qname())
    }

    fn text(&mut self, t: &str) -> io::Result<()> {
        // Write runs without special characters straight through: base64 text is large.
        let mut start = 0;
        for (i, c) in t.char_indices() {
            let rep = match c {
                '&' => "&amp;",
                '<' => "&lt;",
                '>' => "&gt;",
                '\r' => "&#xD;",
                _ => continue,
            };
            self.out.write_all(&t.as_bytes()[start..i])?;
            self.out.write_all(rep.as_bytes())?;
            start = i + 1;
        }
        self.out.write_all(&t.as_bytes()[start..])
    }
}

fn escape_attr(s: &str) -> String {
    let mut o = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => o.push_str("&amp;"),
            '<' => o.push_str("&lt;"),
            '"' => o.push_str("&quot;"),
            '\t' => o.push_str("&#x9;"),
            '\n' => o.push_str("&#xA;"),
            '\r' => o.push_str("&#xD;"),
            c => o.push(c),
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dom;

    fn c14n(xml: &str, method: Method) -> String {
        let root = dom::read(xml.as_bytes(), crate::limits::Limits::INPUT).unwrap();
        let scope = dom::in_scope_at(&root, &root);
        let mut out = Vec::new();
        canonicalize(&mut out, &root, &scope, None, &method).unwrap();
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn inclusive_sorts_attributes_drops_redundant_namespaces_and_comments() {
        // From the Canonical XML 1.0 examples (3.3 and 3.4), trimmed.
        let xml = "<?xml version=\"1.0\"?>\r\n<doc xmlns=\"http://www.ietf.org\" xmlns:w3c=\"http://www.w3.org\">\r\n<!-- c -->\r\n<e5 a:attr=\"out\" b:attr=\"sorted\" attr2=\"all\" attr=\"I'm\"\r\n xmlns:b=\"http://www.ietf.org\" xmlns:a=\"http://www.w3.org\" xmlns=\"http://www.ietf.org\"/>\r\n<e6 xmlns=\"\" a='x&#xA;y'>1 &lt; 2 &amp;&#13;</e6>\r\n</doc>";
        assert_eq!(
            c14n(xml, Method::Inclusive { comments: false }),
            "<doc xmlns=\"http://www.ietf.org\" xmlns:w3c=\"http://www.w3.org\">\n\n<e5 xmlns:a=\"http://www.w3.org\" xmlns:b=\"http://www.ietf.org\" attr=\"I'm\" attr2=\"all\" b:attr=\"sorted\" a:attr=\"out\"></e5>\n<e6 xmlns=\"\" a=\"x&#xA;y\">1 &lt; 2 &amp;&#xD;</e6>\n</doc>"
        );
    }

    #[test]
    fn exclusive_renders_only_visibly_used_namespaces() {
        let xml = "<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\"><b:x><y/></b:x></a:r>";
        assert_eq!(
            c14n(
                xml,
                Method::Exclusive {
                    comments: false,
                    prefixes: vec![]
                }
            ),
            "<a:r xmlns:a=\"urn:a\"><b:x xmlns:b=\"urn:b\"><y></y></b:x></a:r>"
        );
        assert_eq!(
            c14n(xml, Method::Inclusive { comments: false }),
            "<a:r xmlns:a=\"urn:a\" xmlns:b=\"urn:b\"><b:x><y></y></b:x></a:r>"
        );
    }
}
