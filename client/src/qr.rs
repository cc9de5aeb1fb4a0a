//! QR codes of request codes (the `qr` feature): a machine without internet shows
//! one, a phone scans it and opens the customer page with the code filled in.

use qrcode::{Color, EcLevel, QrCode};

/// Light modules around the symbol, as the QR specification asks.
const QUIET_ZONE: usize = 4;

/// A QR symbol: `width` x `width` modules.
#[derive(Debug, Clone)]
pub struct Qr {
    width: usize,
    dark: Vec<bool>,
}

/// Why a text has no QR code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("too long for a QR code")]
pub struct TooLong;

impl Qr {
    /// The symbol of `text`, with medium error correction (15% of it may be lost).
    pub fn new(text: &str) -> Result<Self, TooLong> {
        let code = QrCode::with_error_correction_level(text.as_bytes(), EcLevel::M)
            .map_err(|_| TooLong)?;
        Ok(Self {
            width: code.width(),
            dark: code
                .to_colors()
                .into_iter()
                .map(|c| c == Color::Dark)
                .collect(),
        })
    }

    /// Modules on a side (without the quiet zone).
    pub fn width(&self) -> usize {
        self.width
    }

    /// Whether the module at column `x`, row `y` is dark (outside the symbol:
    /// light, the quiet zone).
    pub fn is_dark(&self, x: usize, y: usize) -> bool {
        x < self.width && y < self.width && self.dark[y * self.width + x]
    }

    /// An SVG image, one unit a module, quiet zone included; the app scales it.
    pub fn svg(&self) -> String {
        let side = self.width + 2 * QUIET_ZONE;
        let mut path = String::new();
        for y in 0..self.width {
            for x in 0..self.width {
                if self.is_dark(x, y) {
                    path.push_str(&format!("M{} {}h1v1h-1z", x + QUIET_ZONE, y + QUIET_ZONE));
                }
            }
        }
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {side} {side}\" \
             shape-rendering=\"crispEdges\"><rect width=\"{side}\" height=\"{side}\" \
             fill=\"#fff\"/><path fill=\"#000\" d=\"{path}\"/></svg>\n"
        )
    }

    /// Text for a terminal with a dark background: two rows of modules a line,
    /// light modules drawn (`█`, `▀`, `▄`), quiet zone included.
    pub fn terminal(&self) -> String {
        let side = self.width + 2 * QUIET_ZONE;
        let light = |x: usize, y: usize| {
            let inside = |v: usize| (QUIET_ZONE..QUIET_ZONE + self.width).contains(&v);
            !(inside(x) && inside(y) && self.is_dark(x - QUIET_ZONE, y - QUIET_ZONE))
        };
        let mut out = String::new();
        for y in (0..side).step_by(2) {
            for x in 0..side {
                let top = light(x, y);
                let bottom = y + 1 < side && light(x, y + 1);
                out.push(match (top, bottom) {
                    (true, true) => '█',
                    (true, false) => '▀',
                    (false, true) => '▄',
                    (false, false) => ' ',
                });
            }
            out.push('\n');
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The symbol drawn as a grey image, `scale` pixels a module, and read back by
    /// rqrr, a decoder someone else wrote.
    fn decoded(qr: &Qr, scale: usize) -> String {
        let side = (qr.width() + 2 * QUIET_ZONE) * scale;
        let img = rqrr::PreparedImage::prepare_from_greyscale(side, side, |x, y| {
            let (mx, my) = (x / scale, y / scale);
            let dark = mx >= QUIET_ZONE
                && my >= QUIET_ZONE
                && qr.is_dark(mx - QUIET_ZONE, my - QUIET_ZONE);
            if dark {
                0
            } else {
                255
            }
        });
        let mut img = img;
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1, "one symbol found");
        grids[0].decode().unwrap().1
    }

    #[test]
    fn a_page_url_with_a_request_code_scans_back() {
        let key = format!("v4.public.{}", "A".repeat(300));
        let r = crate::offline::ActivationRequest::new(
            key,
            crate::machine_fingerprint("app", "machine"),
        )
        .with_name("Studio PC");
        let url = r.page_url("https://licenses.example.com").unwrap();
        let qr = Qr::new(&url).unwrap();
        assert_eq!(decoded(&qr, 4), url);
        let code = url.split_once('#').unwrap().1;
        assert_eq!(crate::offline::ActivationRequest::parse(code).unwrap(), r);
    }

    #[test]
    fn the_svg_and_the_terminal_text_draw_the_same_modules() {
        let qr = Qr::new("KCA0123").unwrap();
        let side = qr.width() + 2 * QUIET_ZONE;
        let svg = qr.svg();
        let dark = (0..qr.width())
            .flat_map(|y| (0..qr.width()).map(move |x| (x, y)))
            .filter(|&(x, y)| qr.is_dark(x, y))
            .count();
        assert_eq!(svg.matches("h1v1h-1z").count(), dark);
        assert!(svg.contains(&format!("viewBox=\"0 0 {side} {side}\"")));
        let text = qr.terminal();
        assert_eq!(text.lines().count(), side.div_ceil(2));
        assert!(text.lines().all(|l| l.chars().count() == side));
        // The top rows are the quiet zone: light.
        assert!(text.lines().next().unwrap().chars().all(|c| c == '█'));
    }

    #[test]
    fn a_text_too_long_is_refused() {
        assert_eq!(Qr::new(&"x".repeat(4000)).unwrap_err(), TooLong);
    }
}
