//! The limits on what the reader accepts, so that no input (a file given to `lienthong
//! edxml check` or `send --edxml`, an `edxml_preserved` value a DMS sends to a node) can
//! exhaust the stack, the memory or the CPU of whoever reads it.
//!
//! The tree the reader builds is walked recursively (copied, compared, canonicalized,
//! written, dropped), so its depth bounds the stack every one of those walks needs; the
//! counts bound the memory of the tree (an element or an attribute costs about a hundred
//! bytes however few bytes it took in the input) and the work of namespace resolution and
//! canonicalization. Every limit is far above what real edXML needs: a message is 10–20
//! elements deep, with a few hundred elements and a handful of namespace declarations.
//! Attachment contents are not limited: they are text, decoded as a stream.

/// Deepest nesting of elements, the root being level 1. Real edXML is 10–20 deep.
pub const MAX_DEPTH: usize = 256;
/// Most elements in one message, comments counted with them.
pub const MAX_ELEMENTS: usize = 100_000;
/// Most attributes in one message, namespace declarations counted with them.
pub const MAX_ATTRIBUTES: usize = 100_000;
/// Most namespace declarations in scope at one element: its own and its ancestors'.
pub const MAX_NAMESPACES_IN_SCOPE: usize = 256;
/// Longest element or attribute name, prefix included, in bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most `Reference`s in an XML-DSig `SignedInfo`: each one is canonicalized and hashed
/// (a `URI=""` one covers the whole message), and real signatures have one to three.
pub const MAX_SIGNATURE_REFERENCES: usize = 16;

/// The limits one reading applies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Limits {
    pub depth: usize,
    pub elements: usize,
    pub attributes: usize,
    pub namespaces_in_scope: usize,
    pub name_bytes: usize,
}

impl Limits {
    /// For a message from outside: the constants above.
    pub(crate) const INPUT: Limits = Limits {
        depth: MAX_DEPTH,
        elements: MAX_ELEMENTS,
        attributes: MAX_ATTRIBUTES,
        namespaces_in_scope: MAX_NAMESPACES_IN_SCOPE,
        name_bytes: MAX_NAME_BYTES,
    };

    /// For edXML this crate wrote from a message read within [`Limits::INPUT`] (an
    /// `edxml_preserved` skeleton, a message being signed): the writer may put a block one
    /// level deeper than it was read (a Bussiness beside the TraceHeaderList goes inside
    /// it), write empty known elements as anchors for unknown ones, and declare again on
    /// an unknown element the namespaces it used from an ancestor it no longer has (at most
    /// one per element and attribute). Twice the counts and a few more levels cover that,
    /// and still bound the stack and the memory.
    pub(crate) const WRITTEN: Limits = Limits {
        depth: MAX_DEPTH + 4,
        elements: 2 * MAX_ELEMENTS,
        attributes: 2 * MAX_ATTRIBUTES + MAX_ELEMENTS + 1024,
        namespaces_in_scope: 2 * MAX_NAMESPACES_IN_SCOPE + 8,
        name_bytes: MAX_NAME_BYTES,
    };
}
