//! Every exported C function runs inside the panic boundary, and the exports are exactly the
//! functions of the committed header.
//!
//! The check reads the sources of `src/ffi/`: each `extern "C" fn` (outside `#[cfg(test)]`
//! modules) must be `#[no_mangle]`, and its body must be exactly one `ffi_boundary!(...)`
//! call naming the function itself. A function added without the boundary, or with code
//! before or after it, fails this test. The list is then compared with the functions that
//! `include/docauth.h` declares, both ways.

use std::collections::BTreeSet;
use std::path::Path;

struct Export {
    file: String,
    name: String,
    body: String,
    no_mangle: bool,
}

/// The source with comments, string literals and char literals blanked out (same length, so
/// byte offsets stay valid), so that braces inside them do not count.
fn code_only(src: &str) -> String {
    let b = src.as_bytes();
    let mut out = b.to_vec();
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                out[i] = b' ';
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            while i < b.len() && !b[i..].starts_with(b"*/") {
                if b[i] != b'\n' {
                    out[i] = b' ';
                }
                i += 1;
            }
            if i < b.len() {
                out[i] = b' ';
                out[i + 1] = b' ';
                i += 2;
            }
        } else if b[i] == b'"' {
            // Raw strings are not used in src/ffi; plain ones may hold escapes.
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    out[i] = b' ';
                    i += 1;
                }
                if b[i] != b'\n' {
                    out[i] = b' ';
                }
                i += 1;
            }
            i += 1;
        } else if b[i] == b'\''
            && i + 2 < b.len()
            && (b[i + 2] == b'\'' || (b[i + 1] == b'\\' && i + 3 < b.len() && b[i + 3] == b'\''))
        {
            let end = if b[i + 2] == b'\'' { i + 2 } else { i + 3 };
            for c in &mut out[i + 1..end] {
                *c = b' ';
            }
            i = end + 1;
        } else {
            i += 1;
        }
    }
    String::from_utf8(out).expect("blanking keeps ASCII positions")
}

/// The offset just past the brace that closes the one opened at `open`.
fn matching_brace(code: &str, open: usize, opening: u8, closing: u8) -> usize {
    let b = code.as_bytes();
    assert_eq!(b[open], opening);
    let mut depth = 0usize;
    for (i, &c) in b.iter().enumerate().skip(open) {
        if c == opening {
            depth += 1;
        } else if c == closing {
            depth -= 1;
            if depth == 0 {
                return i + 1;
            }
        }
    }
    panic!("unbalanced {} at offset {open}", opening as char)
}

/// The source with every `#[cfg(test)] mod … { … }` removed (tests may define their own
/// `extern "C"` helpers).
fn without_test_modules(code: &str) -> String {
    let mut code = code.to_string();
    while let Some(at) = code.find("#[cfg(test)]") {
        let rest = &code[at..];
        let open = rest.find('{');
        let end = match rest.find(';') {
            // `#[cfg(test)] mod tests;`: the tests live in a file of their own.
            Some(semi) if open.is_none_or(|open| semi < open) => at + semi + 1,
            _ => {
                let open = open.expect("a #[cfg(test)] item has a body or a `;`");
                matching_brace(&code, at + open, b'{', b'}')
            }
        };
        code.replace_range(at..end, &" ".repeat(end - at));
    }
    code
}

fn exports() -> Vec<Export> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/ffi");
    let mut found = Vec::new();
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("src/ffi")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "rs"))
        .collect();
    files.sort();
    // On the blanked code the ABI string reads `" "`; the original text is checked below.
    let signature =
        regex::Regex::new(r#"\bextern\s+" "\s+fn\s+([A-Za-z_][A-Za-z0-9_]*)\s*\("#).expect("regex");
    for path in files {
        let src = std::fs::read_to_string(&path).expect("read source");
        let code = without_test_modules(&code_only(&src));
        for m in signature.captures_iter(&code) {
            let whole = m.get(0).expect("match");
            let name = m[1].to_string();
            assert!(
                src[whole.range()].contains("extern \"C\""),
                "{}: {name} has an ABI other than \"C\"",
                path.display()
            );
            let params_open = whole.end() - 1;
            let params_end = matching_brace(&code, params_open, b'(', b')');
            let open = params_end + code[params_end..].find('{').expect("a body");
            let end = matching_brace(&code, open, b'{', b'}');
            // The attributes between the previous item and this one.
            let before = &code[..whole.start()];
            let item_start = before.rfind(['}', ';']).map_or(0, |i| i + 1);
            found.push(Export {
                file: path
                    .file_name()
                    .expect("file name")
                    .to_string_lossy()
                    .into_owned(),
                no_mangle: before[item_start..].contains("#[no_mangle]"),
                name,
                // The body from the original source (string literals included), trimmed.
                body: src[open + 1..end - 1].trim().to_string(),
            });
        }
    }
    found
}

fn header_functions() -> BTreeSet<String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("include/docauth.h");
    let header = std::fs::read_to_string(path).expect("include/docauth.h");
    let code = code_only(&header);
    // A declaration: a return type, the name, `(`, at the start of a line (not a typedef of a
    // function pointer, which reads `(*docauth_name)(`).
    let declaration = regex::Regex::new(r"(?m)^[A-Za-z][A-Za-z0-9_ \*]*?\b(docauth_[a-z0-9_]+)\(")
        .expect("regex");
    declaration
        .captures_iter(&code)
        .map(|c| c[1].to_string())
        .collect()
}

#[test]
fn every_export_is_one_boundary_call_naming_itself() {
    let exports = exports();
    assert!(
        exports.len() >= 40,
        "found only {} exports in src/ffi: the scanner is broken",
        exports.len()
    );
    let mut problems = Vec::new();
    for e in &exports {
        if !e.no_mangle {
            problems.push(format!("{}: {} is not #[no_mangle]", e.file, e.name));
        }
        let call = e.body.strip_suffix(';').unwrap_or(&e.body).trim_end();
        let opens_boundary = call.starts_with("ffi_boundary!(");
        let one_call = opens_boundary && {
            let code = code_only(call);
            let open = "ffi_boundary!".len();
            matching_brace(&code, open, b'(', b')') == code.len()
        };
        if !one_call {
            problems.push(format!(
                "{}: the body of {} is not exactly one ffi_boundary!(...) call",
                e.file, e.name
            ));
            continue;
        }
        let named = format!("\"{}\"", e.name);
        let head: String = call.chars().take(200).collect();
        if !head.contains(&named) {
            problems.push(format!(
                "{}: the boundary of {} does not name it ({named})",
                e.file, e.name
            ));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_exports_are_the_functions_of_the_header() {
    let exported: BTreeSet<String> = exports().into_iter().map(|e| e.name).collect();
    let declared = header_functions();
    let missing_in_header: Vec<_> = exported.difference(&declared).collect();
    let missing_in_source: Vec<_> = declared.difference(&exported).collect();
    assert!(
        missing_in_header.is_empty() && missing_in_source.is_empty(),
        "exported but not in include/docauth.h: {missing_in_header:?}\n\
         declared in include/docauth.h but not an extern \"C\" fn of src/ffi: {missing_in_source:?}"
    );
    assert_eq!(exported.len(), declared.len());
}

/// The scanner itself: a body with code outside the boundary is caught.
#[test]
fn the_scanner_sees_code_outside_the_boundary() {
    let code = code_only(
        "pub extern \"C\" fn f() { let x = \"}\"; ffi_boundary!(default: 0, \"f\", { x.len() }) }",
    );
    let open = code.find('{').unwrap();
    let end = matching_brace(&code, open, b'{', b'}');
    assert_eq!(
        end,
        code.len(),
        "a brace inside a string literal was counted"
    );
    let body = code[open + 1..end - 1].trim();
    assert!(!body.starts_with("ffi_boundary!("));
    let tests = without_test_modules("a #[cfg(test)] mod tests { extern \"C\" fn g() {} } b");
    assert!(!tests.contains("fn g"));
    let tests = without_test_modules("a #[cfg(test)] mod tests; extern \"C\" fn g() {} b");
    assert!(tests.contains("extern \"C\" fn g() {}") && !tests.contains("mod tests"));
}
