//! Borrowed views of a parsed [`Message`](super::Message): [`OpMsg`] (body and document
//! sequences), [`OpQuery`], [`OpReply`]. The parser validated the bytes they read.

use bson::raw::RawDocument;

use super::doc::doc_prefix;
use super::frame::{flags, read_i32};
use crate::Result;

/// A view of an OP_MSG.
#[derive(Clone, Copy, Debug)]
pub struct OpMsg<'a> {
    pub(super) flag_bits: u32,
    pub(super) body: &'a RawDocument,
    pub(super) sections: &'a [u8],
    pub(super) sequence_count: usize,
}

impl<'a> OpMsg<'a> {
    /// The flag bits (see [`flags`]).
    pub fn flag_bits(&self) -> u32 {
        self.flag_bits
    }
    /// The sender expects no reply.
    pub fn more_to_come(&self) -> bool {
        self.flag_bits & flags::MORE_TO_COME != 0
    }
    /// The client allows several replies (exhaust).
    pub fn exhaust_allowed(&self) -> bool {
        self.flag_bits & flags::EXHAUST_ALLOWED != 0
    }
    /// The message carried a (verified) checksum.
    pub fn checksum_present(&self) -> bool {
        self.flag_bits & flags::CHECKSUM_PRESENT != 0
    }
    /// The kind-0 body document.
    pub fn body(&self) -> &'a RawDocument {
        self.body
    }
    /// Number of kind-1 document sequences.
    pub fn sequence_count(&self) -> usize {
        self.sequence_count
    }
    /// The kind-1 document sequences, in message order.
    pub fn sequences(&self) -> Sequences<'a> {
        Sequences {
            sections: self.sections,
            at: 0,
        }
    }
    /// The sequence with this identifier (the first one; duplicates are refused by
    /// [`super::analyse`]).
    pub fn sequence(&self, identifier: &str) -> Option<DocumentSequence<'a>> {
        self.sequences().find(|s| s.identifier == identifier)
    }
}

/// Iterator over an OP_MSG's kind-1 sections (already validated by the parser).
#[derive(Clone, Debug)]
pub struct Sequences<'a> {
    pub(super) sections: &'a [u8],
    pub(super) at: usize,
}

impl<'a> Iterator for Sequences<'a> {
    type Item = DocumentSequence<'a>;
    fn next(&mut self) -> Option<DocumentSequence<'a>> {
        loop {
            let kind = *self.sections.get(self.at)?;
            let rest = self.sections.get(self.at + 1..)?;
            if kind == 0 {
                let len = read_i32(rest, 0).ok()?;
                self.at += 1 + usize::try_from(len).ok()?;
                continue;
            }
            let size = usize::try_from(read_i32(rest, 0).ok()?).ok()?;
            let section = rest.get(4..size)?;
            let nul = section.iter().position(|b| *b == 0)?;
            let identifier = std::str::from_utf8(&section[..nul]).ok()?;
            self.at += 1 + size;
            return Some(DocumentSequence {
                identifier,
                documents: &section[nul + 1..],
            });
        }
    }
}

/// One kind-1 section: an identifier and the documents that follow it.
#[derive(Clone, Copy, Debug)]
pub struct DocumentSequence<'a> {
    /// The identifier (the command field the documents stand for, e.g. `documents`).
    pub identifier: &'a str,
    pub(super) documents: &'a [u8],
}

impl<'a> DocumentSequence<'a> {
    /// The documents of the sequence.
    pub fn documents(&self) -> Documents<'a> {
        Documents {
            bytes: self.documents,
        }
    }
    /// The raw bytes of the documents (concatenated).
    pub fn documents_bytes(&self) -> &'a [u8] {
        self.documents
    }
}

/// Iterator over concatenated BSON documents.
#[derive(Clone, Debug)]
pub struct Documents<'a> {
    pub(super) bytes: &'a [u8],
}

impl<'a> Iterator for Documents<'a> {
    type Item = Result<&'a RawDocument>;
    fn next(&mut self) -> Option<Result<&'a RawDocument>> {
        if self.bytes.is_empty() {
            return None;
        }
        match doc_prefix(self.bytes, "a document") {
            Ok((doc, len)) => {
                self.bytes = self.bytes.get(len..).unwrap_or_default();
                Some(Ok(doc))
            }
            Err(e) => {
                self.bytes = &[];
                Some(Err(e))
            }
        }
    }
}

/// A view of an OP_QUERY.
#[derive(Clone, Copy, Debug)]
pub struct OpQuery<'a> {
    /// The OP_QUERY flags.
    pub flags: i32,
    /// `db.collection` (for commands `db.$cmd`).
    pub full_collection_name: &'a str,
    /// numberToSkip.
    pub number_to_skip: i32,
    /// numberToReturn.
    pub number_to_return: i32,
    /// The query document as sent (possibly wrapping the command in `$query`).
    pub query: &'a RawDocument,
    /// The optional returnFieldsSelector.
    pub return_fields_selector: Option<&'a RawDocument>,
}

impl<'a> OpQuery<'a> {
    /// The command: the query document, or the document under `$query`/`query` when the
    /// query document's first key is one of those (legacy wrapping with read preference).
    pub fn command(&self) -> &'a RawDocument {
        wrapped_command(self.query).unwrap_or(self.query)
    }
}

/// For a legacy wrapped query (`{$query: {...}, $readPreference: ...}`), the inner document.
pub(crate) fn wrapped_command(query: &RawDocument) -> Option<&RawDocument> {
    let (key, value) = query.iter().next()?.ok()?;
    if key == "$query" || key == "query" {
        value.as_document()
    } else {
        None
    }
}

/// A view of an OP_REPLY.
#[derive(Clone, Copy, Debug)]
pub struct OpReply<'a> {
    /// responseFlags (bit 1 = QueryFailure).
    pub response_flags: i32,
    /// cursorID.
    pub cursor_id: i64,
    /// startingFrom.
    pub starting_from: i32,
    /// numberReturned.
    pub number_returned: i32,
    pub(super) documents: &'a [u8],
}

impl<'a> OpReply<'a> {
    /// The returned documents.
    pub fn documents(&self) -> Documents<'a> {
        Documents {
            bytes: self.documents,
        }
    }
}
