//! The XML form of the CVRF document (`Accept: application/xml` on the MSRC API):
//! CVRF 1.1 elements in the `cvrf:`, `prod:` and `vuln:` namespaces, matched here by
//! their local names, since the prefixes are the document's choice.
//!
//! The `Vulnerability` elements are found first by a scan of the tags, so that one
//! with broken XML is skipped alone; the header before them (title, tracking, product
//! tree) and each of them are then read with quick-xml into a small element tree.

use std::collections::HashMap;
use std::ops::Range;

use quick_xml::Reader;
use quick_xml::events::{BytesRef, Event};

use super::{Document, Entry, RawRemediation, RawScoreSet, RawThreat, RawVuln};
use crate::catalog::{Problem, shorten};

/// Reads the document's header and its Vulnerability records; an error says why the
/// bytes are not a CVRF document in XML.
pub(super) fn read(bytes: &[u8]) -> Result<Document, String> {
    let ranges = vulnerability_ranges(bytes);
    let header_end = ranges.first().map_or(bytes.len(), |r| r.start);
    let header = element_tree(&bytes[..header_end], Ends::Lenient)
        .map_err(|(why, _)| format!("bad XML before the first Vulnerability: {why}"))?;
    if header.name != "cvrfdoc" {
        return Err(format!(
            "the root element is <{}>, not <cvrfdoc>",
            header.name
        ));
    }
    let mut products = HashMap::new();
    collect_products(&header, &mut products);
    Ok(Document {
        title: header.text_of("DocumentTitle"),
        initial_release: header
            .child("DocumentTracking")
            .and_then(|t| t.text_of("InitialReleaseDate")),
        products,
        vulnerabilities: ranges.into_iter().map(|r| entry(&bytes[r])).collect(),
    })
}

/// How deep elements may nest (CVRF needs 8): deeper input is refused rather than
/// walked by recursion.
const MAX_DEPTH: usize = 64;

/// One element: its local name, attributes, text and child elements.
#[derive(Debug, Default)]
struct Element {
    /// The local name (without the namespace prefix).
    name: String,
    /// The attributes, by local name.
    attributes: Vec<(String, String)>,
    /// The text directly inside it, unescaped.
    text: String,
    /// Its child elements, in order.
    children: Vec<Element>,
}

impl Element {
    /// The first child element with this local name.
    fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// The child elements with this local name.
    fn children<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The trimmed text of the first child with this local name, unless empty.
    fn text_of(&self, name: &str) -> Option<String> {
        self.child(name).and_then(Element::trimmed)
    }

    /// The trimmed texts of the children with this local name, without empty ones.
    fn texts_of(&self, name: &str) -> Vec<String> {
        self.children(name).filter_map(Element::trimmed).collect()
    }

    /// Its trimmed text, unless empty.
    fn trimmed(&self) -> Option<String> {
        let text = self.text.trim();
        (!text.is_empty()).then(|| text.to_string())
    }

    /// The value of the attribute with this local name.
    fn attribute(&self, name: &str) -> Option<String> {
        self.attributes
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.clone())
    }
}

/// Every `FullProductName` in the product tree, at any depth.
fn collect_products(element: &Element, products: &mut HashMap<String, String>) {
    for child in &element.children {
        if child.name == "FullProductName" {
            if let (Some(id), Some(name)) = (child.attribute("ProductID"), child.trimmed()) {
                products.entry(id.trim().to_string()).or_insert(name);
            }
        } else {
            collect_products(child, products);
        }
    }
}

/// One Vulnerability element.
fn entry(bytes: &[u8]) -> Entry {
    match element_tree(bytes, Ends::Strict) {
        Ok(vuln) => Entry {
            ordinal: vuln.attribute("Ordinal"),
            cve: vuln.text_of("CVE"),
            body: Ok(raw_vuln(&vuln)),
        },
        Err((why, at)) => Entry {
            ordinal: sniff_ordinal(bytes),
            cve: sniff_cve(bytes),
            body: Err(Problem::Invalid {
                field: "Vulnerability".to_string(),
                why: format!("broken XML: {why}"),
                got: shorten(&near(bytes, at)),
            }),
        },
    }
}

/// The parts of a Vulnerability element this feed uses.
fn raw_vuln(vuln: &Element) -> RawVuln {
    let within = |list: &'static str, item: &'static str| {
        vuln.children(list)
            .flat_map(move |l| l.children(item))
            .collect::<Vec<_>>()
    };
    RawVuln {
        threats: within("Threats", "Threat")
            .into_iter()
            .map(|t| RawThreat {
                kind: t.attribute("Type"),
                description: t.text_of("Description"),
                products: t.texts_of("ProductID"),
            })
            .collect(),
        score_sets: within("CVSSScoreSets", "ScoreSet")
            .into_iter()
            .map(|s| RawScoreSet {
                base_score: s.text_of("BaseScore"),
                vector: s.text_of("Vector"),
                products: s.texts_of("ProductID"),
            })
            .collect(),
        remediations: within("Remediations", "Remediation")
            .into_iter()
            .map(|r| RawRemediation {
                kind: r.attribute("Type"),
                description: r.text_of("Description"),
                products: r.texts_of("ProductID"),
                restart_required: r.text_of("RestartRequired"),
                sub_type: r.text_of("SubType"),
                supercedence: r.text_of("Supercedence"),
            })
            .collect(),
        revision_dates: within("RevisionHistory", "Revision")
            .into_iter()
            .map(|r| r.text_of("Date"))
            .collect(),
    }
}

/// What to do with elements still open at the end of the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ends {
    /// Close them (the header, cut before the first Vulnerability).
    Lenient,
    /// They are an error (a Vulnerability must be whole).
    Strict,
}

/// Reads bytes holding one element (and what surrounds it) into its tree; an error
/// gives the reason and the byte offset near which it is.
fn element_tree(bytes: &[u8], ends: Ends) -> Result<Element, (String, usize)> {
    let mut reader = Reader::from_reader(bytes);
    reader.config_mut().check_end_names = true;
    let mut open: Vec<Element> = Vec::new();
    let mut done: Option<Element> = None;
    let offset = |reader: &Reader<&[u8]>| usize::try_from(reader.buffer_position()).unwrap_or(0);
    loop {
        let before = offset(&reader);
        let event = reader.read_event().map_err(|e| {
            (
                e.to_string(),
                usize::try_from(reader.error_position()).unwrap_or(0),
            )
        })?;
        let fail = |why: String| Err((why, before));
        match event {
            Event::Start(start) | Event::Empty(start) if done.is_some() && open.is_empty() => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                return fail(format!("a second root element <{name}>"));
            }
            Event::Start(_) if open.len() >= MAX_DEPTH => {
                return fail(format!("elements nested more than {MAX_DEPTH} deep"));
            }
            Event::Start(start) => open.push(element(&start).map_err(|why| (why, before))?),
            Event::Empty(start) => {
                let element = element(&start).map_err(|why| (why, before))?;
                close(&mut open, &mut done, element);
            }
            Event::End(_) => match open.pop() {
                Some(element) => close(&mut open, &mut done, element),
                None => return fail("an end tag without its start".to_string()),
            },
            Event::Text(text) => {
                let text = text.xml10_content().map_err(|e| (e.to_string(), before))?;
                push_text(&mut open, &text);
            }
            Event::CData(data) => {
                let text = data.xml10_content().map_err(|e| (e.to_string(), before))?;
                push_text(&mut open, &text);
            }
            Event::GeneralRef(reference) => {
                let text = resolve(&reference).map_err(|why| (why, before))?;
                push_text(&mut open, &text);
            }
            Event::Eof => return finish(open, done, ends, before),
            Event::Comment(_) | Event::Decl(_) | Event::PI(_) | Event::DocType(_) => {}
        }
    }
}

/// The tree once the bytes are read: the root, with what is still open closed when
/// that is allowed.
fn finish(
    mut open: Vec<Element>,
    mut done: Option<Element>,
    ends: Ends,
    at: usize,
) -> Result<Element, (String, usize)> {
    if let Some(unclosed) = open.last().filter(|_| ends == Ends::Strict) {
        return Err((format!("<{}> is not closed", unclosed.name), at));
    }
    while let Some(element) = open.pop() {
        close(&mut open, &mut done, element);
    }
    done.ok_or_else(|| ("no element".to_string(), at))
}

/// Adds a finished element to its parent, or makes it the root.
fn close(open: &mut [Element], done: &mut Option<Element>, element: Element) {
    match open.last_mut() {
        Some(parent) => parent.children.push(element),
        None => *done = Some(element),
    }
}

/// Adds text to the element that holds it (text outside the root is dropped).
fn push_text(open: &mut [Element], text: &str) {
    if let Some(element) = open.last_mut() {
        element.text.push_str(text);
    }
}

/// An element from its start tag, with its attributes unescaped.
fn element(start: &quick_xml::events::BytesStart<'_>) -> Result<Element, String> {
    let mut attributes = Vec::new();
    for attribute in start.attributes() {
        let attribute = attribute.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(attribute.key.local_name().as_ref()).into_owned();
        let value = attribute.unescape_value().map_err(|e| e.to_string())?;
        attributes.push((key, value.into_owned()));
    }
    Ok(Element {
        name: String::from_utf8_lossy(start.local_name().as_ref()).into_owned(),
        attributes,
        ..Element::default()
    })
}

/// The text of an entity or character reference (`&lt;`, `&#233;`).
fn resolve(reference: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = reference.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name = reference.decode().map_err(|e| e.to_string())?;
    quick_xml::escape::resolve_predefined_entity(&name)
        .map(str::to_string)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

/// The byte ranges of the `Vulnerability` elements, each from its start tag to the end
/// of its end tag. One left open ends where the next begins, or at the end of the
/// bytes. Comments, CDATA sections, processing instructions and declarations are
/// passed over; text cannot hold a `<`.
fn vulnerability_ranges(bytes: &[u8]) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut open: Option<usize> = None;
    let mut at = 0;
    while let Some(lt) = find(bytes, at, b"<") {
        let rest = &bytes[lt..];
        let skip_to = |end: &[u8]| find(bytes, lt + 1, end).map_or(bytes.len(), |i| i + end.len());
        at = if rest.starts_with(b"<!--") {
            skip_to(b"-->")
        } else if rest.starts_with(b"<![CDATA[") {
            skip_to(b"]]>")
        } else if rest.starts_with(b"<?") {
            skip_to(b"?>")
        } else if rest.starts_with(b"<!") {
            skip_to(b">")
        } else {
            let tag = tag_at(bytes, lt);
            if tag.local_name == b"Vulnerability" {
                match (tag.closing, open) {
                    (false, previous) => {
                        ranges.extend(previous.map(|start| start..lt));
                        open = (!tag.empty).then_some(lt);
                        if tag.empty {
                            ranges.push(lt..tag.end);
                        }
                    }
                    (true, Some(start)) => {
                        ranges.push(start..tag.end);
                        open = None;
                    }
                    (true, None) => {}
                }
            }
            tag.end
        };
    }
    ranges.extend(open.map(|start| start..bytes.len()));
    ranges
}

/// A tag found by [`vulnerability_ranges`].
struct Tag<'a> {
    /// Its local name.
    local_name: &'a [u8],
    /// An end tag (`</…>`).
    closing: bool,
    /// An empty-element tag (`<…/>`).
    empty: bool,
    /// The offset just after its `>` (or the end of the bytes).
    end: usize,
}

/// The tag that starts at `lt` (a `<`).
fn tag_at(bytes: &[u8], lt: usize) -> Tag<'_> {
    let closing = bytes.get(lt + 1) == Some(&b'/');
    let name_start = lt + 1 + usize::from(closing);
    let name_end = bytes[name_start..]
        .iter()
        .position(|b| b.is_ascii_whitespace() || matches!(b, b'/' | b'>' | b'<'))
        .map_or(bytes.len(), |i| name_start + i);
    let name = &bytes[name_start..name_end];
    let local_name = name.rsplit(|&b| b == b':').next().unwrap_or(name);
    let mut quote: Option<u8> = None;
    let mut end = bytes.len();
    for (i, &b) in bytes.iter().enumerate().skip(name_end) {
        match (quote, b) {
            (Some(q), _) if b == q => quote = None,
            (Some(_), _) => {}
            (None, b'"' | b'\'') => quote = Some(b),
            (None, b'>') => {
                end = i + 1;
                break;
            }
            (None, b'<') => {
                end = i;
                break;
            }
            (None, _) => {}
        }
    }
    let empty = !closing && end >= 2 && bytes[..end].ends_with(b"/>");
    Tag {
        local_name,
        closing,
        empty,
        end: end.max(lt + 1),
    }
}

/// The offset of `needle` in `bytes` at or after `from`.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    let hay = bytes.get(from..)?;
    if needle.len() == 1 {
        return hay.iter().position(|&b| b == needle[0]).map(|i| from + i);
    }
    hay.windows(needle.len())
        .position(|w| w == needle)
        .map(|i| from + i)
}

/// The Ordinal attribute of a broken Vulnerability's start tag, if it can be seen.
fn sniff_ordinal(bytes: &[u8]) -> Option<String> {
    let tag_end = tag_at(bytes, 0).end;
    let tag = String::from_utf8_lossy(&bytes[..tag_end]);
    let (_, rest) = tag.split_once("Ordinal=")?;
    let quote = rest.chars().next().filter(|c| matches!(c, '"' | '\''))?;
    let value = rest[1..].split(quote).next()?;
    Some(value.to_string())
}

/// The CVE id of a broken Vulnerability, if one can be seen in it.
fn sniff_cve(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes);
    let start = text
        .find(":CVE>")
        .map(|i| i + 5)
        .or_else(|| text.find("<CVE>").map(|i| i + 5))?;
    let id = text[start..].split('<').next()?.trim();
    super::CveKey::parse(id).map(|_| id.to_string())
}

/// A little of the bytes at an offset, for a problem report.
fn near(bytes: &[u8], at: usize) -> String {
    let start = at.min(bytes.len());
    let end = (start + 80).min(bytes.len());
    String::from_utf8_lossy(&bytes[start..end])
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vulnerabilities_are_found_by_local_name_and_a_broken_one_ends_at_the_next() {
        let doc = br#"<?xml version="1.0"?><c:cvrfdoc><!-- <v:Vulnerability> --><p:ProductTree/>
<v:Vulnerability Ordinal="1"><v:CVE>CVE-2023-0001</v:CVE></v:Vulnerability>
<Vulnerability Ordinal='2' note="a>b"><CVE>CVE-2023-0002</CVE>
<x:Vulnerability Ordinal="3"><![CDATA[</x:Vulnerability>]]></x:Vulnerability>
<v:Vulnerability/></c:cvrfdoc>"#;
        let ranges = vulnerability_ranges(doc);
        let texts: Vec<String> = ranges
            .iter()
            .map(|r| String::from_utf8_lossy(&doc[r.clone()]).trim().to_string())
            .collect();
        assert_eq!(texts.len(), 4, "{texts:#?}");
        assert!(texts[0].starts_with("<v:Vulnerability Ordinal=\"1\">"));
        assert!(texts[0].ends_with("</v:Vulnerability>"));
        assert!(texts[1].starts_with("<Vulnerability Ordinal='2'"));
        assert!(texts[1].ends_with("<CVE>CVE-2023-0002</CVE>"));
        assert!(texts[2].ends_with("]]></x:Vulnerability>"));
        assert_eq!(texts[3], "<v:Vulnerability/>");
        assert_eq!(sniff_ordinal(texts[1].as_bytes()).as_deref(), Some("2"));
        assert_eq!(
            sniff_cve(texts[1].as_bytes()).as_deref(),
            Some("CVE-2023-0002")
        );
    }

    #[test]
    fn element_trees_unescape_text_and_attributes() {
        let xml =
            br#"<a:r x:k="1 &amp; 2"><a:t>A &lt;b&gt; &#233;<![CDATA[ & c]]></a:t><e/></a:r>"#;
        let root = element_tree(xml, Ends::Strict).unwrap();
        assert_eq!(root.name, "r");
        assert_eq!(root.attribute("k").as_deref(), Some("1 & 2"));
        assert_eq!(root.text_of("t").as_deref(), Some("A <b> é & c"));
        assert!(root.child("e").is_some());
    }

    #[test]
    fn broken_elements_are_errors_when_strict() {
        for bad in [
            &b"<a><b></a>"[..],
            b"<a><b>",
            b"<a></a><b/>",
            b"<a>&bogus;</a>",
            b"<a x=></a>",
        ] {
            assert!(
                element_tree(bad, Ends::Strict).is_err(),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
        let deep = "<a>".repeat(MAX_DEPTH + 1);
        assert!(element_tree(deep.as_bytes(), Ends::Lenient).is_err());
        let header = element_tree(b"<r><t>x</t><u>", Ends::Lenient).unwrap();
        assert_eq!(header.text_of("t").as_deref(), Some("x"));
    }
}
