//! What `fieldlink templates` prints: the device templates a config may name, with their
//! sources, so an integrator picks one knowing where its register map comes from.

use crate::config::templates::{Origin, Templates};
use std::fmt::Write;

/// The list of `library`'s templates, one block each.
pub fn report(library: &Templates) -> String {
    let mut out = String::new();
    for template in library.iter() {
        let _ = writeln!(out, "{}  [{}]", template.name, template.category);
        let _ = writeln!(out, "  {}", template.title);
        let _ = writeln!(
            out,
            "  {} {}; {}; {} points",
            template.manufacturer,
            template.model,
            template.protocols.join(", "),
            template.points.len()
        );
        let _ = writeln!(out, "  source: {}", template.source);
        if template.example {
            let _ = writeln!(
                out,
                "  EXAMPLE: not a real device's map as it stands; check it against yours"
            );
        }
        if let Origin::File(path) = &template.origin {
            let _ = writeln!(out, "  from {}", path.display());
        }
        let _ = writeln!(out);
    }
    let _ = writeln!(
        out,
        "{} templates. Use one with `template = \"NAME\"` in a [[device]]; its points may be overridden by name.",
        library.iter().count()
    );
    out
}
