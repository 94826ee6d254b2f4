//! HPACK decoder against every example of RFC 7541 Appendix C (C.2 to C.6): the decoded header
//! lists and the dynamic table (entries, sizes, total) after each block.

use chainwatch_parser_workers::protocols::http2::hpack::{DecodedField, HpackDecoder, HpackLimits};

fn octets(text: &str) -> Vec<u8> {
    let hex: String = text.chars().filter(|c| c.is_ascii_hexdigit()).collect();
    (0..hex.len() / 2)
        .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap())
        .collect()
}

fn fields(list: &[(&str, &str)]) -> Vec<DecodedField> {
    list.iter()
        .map(|(n, v)| DecodedField {
            name: n.as_bytes().to_vec(),
            value: v.as_bytes().to_vec(),
        })
        .collect()
}

/// Table as (name, value, size) newest first, like the RFC's listings.
fn table(dec: &HpackDecoder) -> Vec<(String, String, usize)> {
    dec.table()
        .iter()
        .map(|e| {
            let name = String::from_utf8(e.name.clone().unwrap()).unwrap();
            (name, String::from_utf8(e.value.clone()).unwrap(), e.size())
        })
        .collect()
}

fn owned(list: &[(&str, &str, usize)]) -> Vec<(String, String, usize)> {
    list.iter()
        .map(|(n, v, s)| (n.to_string(), v.to_string(), *s))
        .collect()
}

fn decoder(table_size: usize) -> HpackDecoder {
    let mut dec = HpackDecoder::new(HpackLimits::default());
    if table_size != 4096 {
        // The RFC's response examples run with SETTINGS_HEADER_TABLE_SIZE 256: an encoder
        // would announce it with a size update; we apply it the same way.
        let mut update = vec![0x3f];
        let mut rest = table_size - 31;
        while rest >= 128 {
            update.push((rest % 128 + 128) as u8);
            rest /= 128;
        }
        update.push(rest as u8);
        let out = dec.decode(&update);
        assert!(out.fields.is_empty() && !out.incomplete);
    }
    dec
}

/// One block of a chain: its octets, the header list it decodes to, the table after it.
type Step<'a> = (
    &'a str,
    &'a [(&'a str, &'a str)],
    &'a [(&'a str, &'a str, usize)],
);

fn run_chain(table_size: usize, steps: &[Step<'_>]) {
    let mut dec = decoder(table_size);
    for (i, (block, expected, expected_table)) in steps.iter().enumerate() {
        let out = dec.decode(&octets(block));
        assert_eq!(out.error, None, "step {i}");
        assert!(!out.incomplete, "step {i}");
        assert_eq!(out.fields, fields(expected), "step {i}");
        assert_eq!(table(&dec), owned(expected_table), "table after step {i}");
        let total: usize = expected_table.iter().map(|e| e.2).sum();
        assert_eq!(dec.table().size(), total, "table size after step {i}");
    }
}

#[test]
fn c2_1_literal_with_indexing() {
    let mut dec = decoder(4096);
    let out = dec.decode(&octets(
        "400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572",
    ));
    assert_eq!(out.fields, fields(&[("custom-key", "custom-header")]));
    assert_eq!(table(&dec), owned(&[("custom-key", "custom-header", 55)]));
    assert_eq!(dec.table().size(), 55);
}

#[test]
fn c2_2_literal_without_indexing() {
    let mut dec = decoder(4096);
    let out = dec.decode(&octets("040c 2f73 616d 706c 652f 7061 7468"));
    assert_eq!(out.fields, fields(&[(":path", "/sample/path")]));
    assert!(dec.table().is_empty());
}

#[test]
fn c2_3_literal_never_indexed() {
    let mut dec = decoder(4096);
    let out = dec.decode(&octets("1008 7061 7373 776f 7264 0673 6563 7265 74"));
    assert_eq!(out.fields, fields(&[("password", "secret")]));
    assert!(dec.table().is_empty());
}

#[test]
fn c2_4_indexed_field() {
    let mut dec = decoder(4096);
    let out = dec.decode(&octets("82"));
    assert_eq!(out.fields, fields(&[(":method", "GET")]));
    assert!(dec.table().is_empty());
}

const REQ1: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
];
const REQ2: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "http"),
    (":path", "/"),
    (":authority", "www.example.com"),
    ("cache-control", "no-cache"),
];
const REQ3: &[(&str, &str)] = &[
    (":method", "GET"),
    (":scheme", "https"),
    (":path", "/index.html"),
    (":authority", "www.example.com"),
    ("custom-key", "custom-value"),
];
const REQ_T1: &[(&str, &str, usize)] = &[(":authority", "www.example.com", 57)];
const REQ_T2: &[(&str, &str, usize)] = &[
    ("cache-control", "no-cache", 53),
    (":authority", "www.example.com", 57),
];
const REQ_T3: &[(&str, &str, usize)] = &[
    ("custom-key", "custom-value", 54),
    ("cache-control", "no-cache", 53),
    (":authority", "www.example.com", 57),
];

#[test]
fn c3_requests_without_huffman() {
    run_chain(
        4096,
        &[
            (
                "8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                REQ1,
                REQ_T1,
            ),
            ("8286 84be 5808 6e6f 2d63 6163 6865", REQ2, REQ_T2),
            (
                "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
                REQ3,
                REQ_T3,
            ),
        ],
    );
}

#[test]
fn c4_requests_with_huffman() {
    run_chain(
        4096,
        &[
            ("8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff", REQ1, REQ_T1),
            ("8286 84be 5886 a8eb 1064 9cbf", REQ2, REQ_T2),
            (
                "8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf",
                REQ3,
                REQ_T3,
            ),
        ],
    );
}

const D1: &str = "Mon, 21 Oct 2013 20:13:21 GMT";
const D2: &str = "Mon, 21 Oct 2013 20:13:22 GMT";
const COOKIE: &str = "foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1";
const RESP1: &[(&str, &str)] = &[
    (":status", "302"),
    ("cache-control", "private"),
    ("date", D1),
    ("location", "https://www.example.com"),
];
const RESP2: &[(&str, &str)] = &[
    (":status", "307"),
    ("cache-control", "private"),
    ("date", D1),
    ("location", "https://www.example.com"),
];
const RESP3: &[(&str, &str)] = &[
    (":status", "200"),
    ("cache-control", "private"),
    ("date", D2),
    ("location", "https://www.example.com"),
    ("content-encoding", "gzip"),
    ("set-cookie", COOKIE),
];
const RESP_T1: &[(&str, &str, usize)] = &[
    ("location", "https://www.example.com", 63),
    ("date", D1, 65),
    ("cache-control", "private", 52),
    (":status", "302", 42),
];
const RESP_T2: &[(&str, &str, usize)] = &[
    (":status", "307", 42),
    ("location", "https://www.example.com", 63),
    ("date", D1, 65),
    ("cache-control", "private", 52),
];
const RESP_T3: &[(&str, &str, usize)] = &[
    ("set-cookie", COOKIE, 98),
    ("content-encoding", "gzip", 52),
    ("date", D2, 65),
];

#[test]
fn c5_responses_without_huffman() {
    run_chain(
        256,
        &[
            (
                "4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32
                 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d",
                RESP1,
                RESP_T1,
            ),
            ("4803 3330 37c1 c0bf", RESP2, RESP_T2),
            (
                "88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970
                 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61
                 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31",
                RESP3,
                RESP_T3,
            ),
        ],
    );
}

#[test]
fn c6_responses_with_huffman() {
    run_chain(
        256,
        &[
            (
                "4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad
                 1718 63c7 8f0b 97c8 e9ae 82ae 43d3",
                RESP1,
                RESP_T1,
            ),
            ("4883 640e ffc1 c0bf", RESP2, RESP_T2),
            (
                "88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2
                 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07",
                RESP3,
                RESP_T3,
            ),
        ],
    );
}

#[test]
fn c3_joined_after_first_request_flags_but_never_invents() {
    // A decoder that missed C.3.1 sees C.3.2: the dynamic :authority is unknown.
    let mut dec = HpackDecoder::new_mid_connection(HpackLimits::default());
    let out = dec.decode(&octets("8286 84be 5808 6e6f 2d63 6163 6865"));
    assert!(out.incomplete);
    assert_eq!(out.unknown_references, 1);
    assert_eq!(
        out.fields,
        fields(&[
            (":method", "GET"),
            (":scheme", "http"),
            (":path", "/"),
            ("cache-control", "no-cache")
        ])
    );
    // C.3.3 refers to cache-control? No: to :authority (now index 63 = bf), still unknown;
    // index 62 (be) is never used there, and custom-key is a literal.
    let out = dec.decode(&octets(
        "8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65",
    ));
    assert!(out.incomplete);
    assert_eq!(
        out.fields,
        fields(&[
            (":method", "GET"),
            (":scheme", "https"),
            (":path", "/index.html"),
            ("custom-key", "custom-value")
        ])
    );
}
