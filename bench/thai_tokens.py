"""How tier 4's tokenizer (UMT5's SentencePiece) cuts Thai shot descriptions, beside their English.

    python -m bench.thai_tokens                                  # weights/wan2.2-ti2v-5b/tokenizer
    python -m bench.thai_tokens --tokenizer DIR_OR_SPIECE_MODEL --out /tmp/THAI.md

Tier 4's text encoder, UMT5-XXL, was pretrained on 107 languages, Thai among them (the
google/umt5-xxl model card), so it could read a Thai prompt as written, where tiers 2 and 3 need
it translated for CLIP (pipelines/prompts.py). Whether its tokenizer covers Thai is the first
thing to know: for each prompt this counts the pieces per character, the unknown pieces (a
character the vocabulary lacks reads as <unk>, whatever it was) and whether the pieces decode back
to the text, exactly or up to Unicode NFKC (SentencePiece normalises its input; Thai's SARA AM,
U+0E33, becomes NIKHAHIT + SARA AA, which looks the same). The report says whether the tokenizer
is the real google/umt5-xxl one (by the sha256 of its spiece.model) or another, whose figures
describe that tokenizer only. The program downloads nothing.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import platform
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from scripts import REPO
from weights import weights_dir

REPORT = REPO / "bench" / "reports" / "THAI.md"
# The tokenizer folder of the tier-4 weight set (diffusers' layout of Wan-AI/Wan2.2-TI2V-5B-
# Diffusers: tokenizer/spiece.model, tokenizer/tokenizer.json, ...).
TOKENIZER_FOLDER = Path("wan2.2-ti2v-5b") / "tokenizer"
# sha256 of google/umt5-xxl's spiece.model (4,548,313 bytes), the file Wan's Diffusers repos ship
# in tokenizer/: as listed on the Hub's file pages (e.g. huggingface.co/google/umt5-xxl).
UMT5_SPIECE_SHA256 = "e3909a67b780650b35cf529ac782ad2b6b26e6d1f849d3fbb6a872905f452458"
# WanPipeline's max_sequence_length: UMT5 reads at most this many tokens of a prompt.
MAX_TOKENS = 512

# Shot descriptions as a Thai screenwriter might write them, each with its English: places,
# people, camera moves, Thai words with no English spelling, the repetition mark ๆ, and two that
# mix English terms into Thai, as scripts do.
PROMPTS: tuple[tuple[str, str], ...] = (
    (
        "ชายชราเดินช้าๆ ไปตามชายหาดตอนพระอาทิตย์ตก คลื่นซัดเข้าฝั่งเบาๆ",
        "An old man walks slowly along the beach at sunset, waves lapping gently at the shore.",
    ),
    (
        "เด็กหญิงวิ่งผ่านทุ่งนาสีเขียวขณะที่ฝนเริ่มตก กล้องติดตามจากด้านหลัง",
        "A girl runs through green rice fields as the rain begins; the camera follows from behind.",
    ),
    (
        "ตลาดน้ำยามเช้า แม่ค้าพายเรือขายผลไม้ ไอน้ำลอยขึ้นจากหม้อก๋วยเตี๋ยว",
        "A floating market in the morning: vendors paddle boats selling fruit, steam rising from "
        "a noodle pot.",
    ),
    (
        "ภาพมุมสูงของกรุงเทพฯ ยามค่ำคืน รถติดยาวบนถนนสุขุมวิท ไฟนีออนระยิบระยับ",
        "An aerial view of Bangkok at night, a long traffic jam on Sukhumvit Road, neon lights "
        "twinkling.",
    ),
    (
        "พระสงฆ์สามรูปเดินบิณฑบาตในตรอกแคบตอนรุ่งสาง มีหมอกบางๆ ลอยอยู่",
        "Three monks walk their alms round in a narrow alley at dawn, a thin mist in the air.",
    ),
    (
        "หญิงสาวในชุดไทยยืนอยู่หน้าวัดอรุณ ลมพัดผ้าสไบปลิว กล้องค่อยๆ ซูมเข้า",
        "A young woman in Thai dress stands before Wat Arun, the wind lifting her sash; the camera "
        "slowly zooms in.",
    ),
    (
        "ช้างสองตัวเล่นน้ำในลำธารกลางป่า แสงแดดส่องลอดใบไม้",
        "Two elephants play in a stream in the forest, sunlight filtering through the leaves.",
    ),
    (
        "ฉากต่อสู้บนหลังคารถไฟที่กำลังวิ่ง ชายสองคนแลกหมัดกันท่ามกลางลมแรง",
        "A fight on the roof of a moving train: two men trade punches in a strong wind.",
    ),
    (
        "ห้องครัวเล็กๆ ในบ้านไม้ คุณยายกำลังตำส้มตำในครกดินเผา",
        "A small kitchen in a wooden house; grandma pounds papaya salad in a clay mortar.",
    ),
    (
        "เรือหางยาวแล่นผ่านหน้าผาหินปูนที่กระบี่ น้ำทะเลสีเขียวมรกต",
        "A longtail boat passes limestone cliffs in Krabi, the sea emerald green.",
    ),
    (
        "นักเรียนมัธยมปั่นจักรยานกลับบ้านบนถนนลูกรัง ฝุ่นสีแดงฟุ้งกระจาย",
        "High-school students cycle home on a dirt road, red dust billowing behind them.",
    ),
    (
        "ภาพระยะใกล้ของช่างตีเหล็กกำลังตีดาบ ประกายไฟกระเด็นไปทั่ว",
        "A close-up of a blacksmith hammering a sword, sparks flying everywhere.",
    ),
    (
        "งานลอยกระทงริมแม่น้ำเจ้าพระยา ผู้คนปล่อยกระทงที่จุดเทียนให้ลอยไปตามน้ำ",
        "Loy Krathong by the Chao Phraya River: people set candle-lit floats drifting downstream.",
    ),
    (
        "ฝนตกหนักในซอยแคบ ชายคนหนึ่งกางร่มสีแดงวิ่งหลบเข้าร้านกาแฟ",
        "Heavy rain in a narrow lane; a man with a red umbrella runs into a coffee shop.",
    ),
    (
        "ทุ่งดอกทานตะวันบานสะพรั่งที่ลพบุรี ผึ้งบินว่อน กล้องแพนจากซ้ายไปขวา",
        "A sunflower field in full bloom in Lopburi, bees everywhere; the camera pans left to "
        "right.",
    ),
    (
        "นักมวยไทยสองคนไหว้ครูกลางเวทีก่อนเริ่มชก แสงสปอตไลต์ส่องลงมา",
        "Two Muay Thai fighters pay respect to their teachers in the ring before the bout, under "
        "spotlights.",
    ),
    (
        "รถตุ๊กตุ๊กสีชมพูเลี้ยวโค้งอย่างรวดเร็วในเยาวราช ผ่านป้ายร้านทองที่เรียงราย",
        "A pink tuk-tuk swerves round a corner in Chinatown, past rows of gold-shop signs.",
    ),
    (
        "หมู่บ้านบนดอยในเชียงรายถูกปกคลุมด้วยทะเลหมอก ไร่ชาเรียงเป็นขั้นบันได",
        "A hill village in Chiang Rai wrapped in a sea of mist, tea growing on terraces.",
    ),
    (
        "แมวส้มนอนหลับอยู่บนกองหนังสือเก่าในร้านหนังสือมือสอง แสงบ่ายอ่อนๆ",
        "An orange cat asleep on a pile of old books in a second-hand bookshop, soft afternoon "
        "light.",
    ),
    (
        "ชาวประมงเหวี่ยงแหกลางทะเลสาบตอนเช้ามืด เงาสะท้อนบนผิวน้ำที่นิ่งสนิท",
        "A fisherman casts his net on a lake before dawn, reflected in the still water.",
    ),
    (
        "เด็กๆ สาดน้ำกันอย่างสนุกสนานในวันสงกรานต์ ถนนเปียกชุ่มไปหมด",
        "Children splash water at each other on Songkran, the whole street soaked.",
    ),
    (
        "ยานอวกาศลงจอดกลางทุ่งนาในชนบทอีสาน ชาวบ้านยืนมองด้วยความตกใจ",
        "A spaceship lands in a rice field in rural Isan as villagers stare in shock.",
    ),
    (
        "ภาพสโลว์โมชันของหยดน้ำที่ตกลงบนใบบัว",
        "A slow-motion shot of a drop of water falling onto a lotus leaf.",
    ),
    (
        "นักนาฏศิลป์ร่ายรำช้าๆ บนเวทีมืด มีเพียงแสงเทียนรอบตัว",
        "A classical Thai dancer moves slowly on a dark stage, lit only by candles around her.",
    ),
    (
        "ฉากเปิด: drone shot เหนือเกาะพีพีตอน golden hour",
        "Opening scene: a drone shot over Phi Phi Island at golden hour.",
    ),
    (
        'นางเอกพูดว่า "ฉันจะไม่กลับไปอีกแล้ว" แล้วเดินออกจากห้อง close-up ที่ใบหน้า',
        'The heroine says "I will never go back" and walks out of the room; close-up on her face.',
    ),
)


class Tokenizer:
    """A SentencePiece model file (spiece.model), or a tokenizers' tokenizer.json."""

    def __init__(self, path: Path):
        folder_model = path / "spiece.model" if path.is_dir() else path
        self.path = folder_model
        if folder_model.suffix == ".model" and folder_model.is_file():
            import sentencepiece

            self.sp = sentencepiece.SentencePieceProcessor(model_file=str(folder_model))
            self.size = self.sp.get_piece_size()
            self.unk_id = self.sp.unk_id()
            self.sha256 = hashlib.sha256(folder_model.read_bytes()).hexdigest()
            return
        json_file = path / "tokenizer.json" if path.is_dir() else path
        if json_file.name != "tokenizer.json" or not json_file.is_file():
            raise SystemExit(
                f"--tokenizer {path}: no spiece.model or tokenizer.json there; give tier 4's "
                f"tokenizer folder (<weights>/{TOKENIZER_FOLDER}) or one of those files"
            )
        import tokenizers

        self.sp, self.path = None, json_file
        self.json = tokenizers.Tokenizer.from_file(str(json_file))
        self.size = self.json.get_vocab_size()
        self.unk_id = self.json.token_to_id("<unk>")
        self.sha256 = None  # identity is checked on spiece.model only

    def encode(self, text: str) -> list[int]:
        if self.sp is not None:
            return self.sp.encode(text)
        return self.json.encode(text, add_special_tokens=False).ids

    def decode(self, ids: list[int]) -> str:
        return self.sp.decode(ids) if self.sp is not None else self.json.decode(ids)

    def pieces(self, ids: list[int]) -> list[str]:
        if self.sp is not None:
            return [self.sp.id_to_piece(i) for i in ids]
        return [self.json.id_to_token(i) for i in ids]

    @property
    def identity(self) -> str:
        if self.sha256 == UMT5_SPIECE_SHA256:
            return "the real google/umt5-xxl tokenizer (its spiece.model's sha256 matches)"
        if self.sha256 is None:
            return "a tokenizer.json, not identified (only a spiece.model's sha256 is checked)"
        return (
            f"NOT google/umt5-xxl's tokenizer (spiece.model sha256 {self.sha256[:12]}…): the "
            "figures describe this tokenizer only"
        )


@dataclass(frozen=True)
class Cut:
    """One text as the tokenizer cuts it."""

    text: str
    characters: int  # not counting spaces
    pieces: tuple[str, ...]
    unknown: int  # <unk> pieces: a run of unknown characters makes one
    unknown_characters: int  # characters the vocabulary cannot spell at all
    exact_round_trip: bool
    nfkc_round_trip: bool

    @property
    def pieces_per_character(self) -> float:
        return len(self.pieces) / self.characters

    @property
    def single_characters(self) -> int:
        """Pieces of one character (SentencePiece's word marker ▁ aside): the sign of a
        vocabulary that knows the script's letters but few of its words."""
        return sum(1 for piece in self.pieces if len(piece.lstrip("▁")) == 1)


def cut(tokenizer: Tokenizer, text: str) -> Cut:
    ids = tokenizer.encode(text)
    decoded = tokenizer.decode(ids)
    nfkc = unicodedata.normalize("NFKC", text)
    return Cut(
        text=text,
        characters=sum(1 for c in text if not c.isspace()),
        pieces=tuple(tokenizer.pieces(ids)),
        unknown=sum(1 for i in ids if i == tokenizer.unk_id),
        unknown_characters=sum(
            1 for c in text if not c.isspace() and tokenizer.unk_id in tokenizer.encode(c)
        ),
        exact_round_trip=decoded == text,
        nfkc_round_trip=unicodedata.normalize("NFKC", decoded) == nfkc,
    )


def summary(cuts: list[Cut]) -> dict[str, float]:
    pieces = sum(len(c.pieces) for c in cuts)
    return dict(
        prompts=len(cuts),
        characters=sum(c.characters for c in cuts),
        pieces=pieces,
        pieces_per_character=pieces / sum(c.characters for c in cuts),
        unknown_share=sum(c.unknown for c in cuts) / pieces,
        unknown_character_share=sum(c.unknown_characters for c in cuts)
        / sum(c.characters for c in cuts),
        single_character_share=sum(c.single_characters for c in cuts) / pieces,
        exact_round_trips=sum(c.exact_round_trip for c in cuts),
        nfkc_round_trips=sum(c.nfkc_round_trip for c in cuts),
        over_limit=sum(len(c.pieces) + 1 > MAX_TOKENS for c in cuts),  # + the end token
    )


def shown(piece_list: tuple[str, ...], limit: int = 24) -> str:
    text = " ".join(piece_list[:limit]) + (" …" if len(piece_list) > limit else "")
    return text.replace("|", "\\|")


def report(tokenizer: Tokenizer, when: str, where: str) -> str:
    thai = [cut(tokenizer, th) for th, _ in PROMPTS]
    english = [cut(tokenizer, en) for _, en in PROMPTS]
    totals = {"Thai": summary(thai), "English": summary(english)}
    lines = [
        f"# Thai through tier 4's tokenizer, {when} on {where}",
        "",
        "Written by `python -m bench.thai_tokens`. Tokenizer: "
        f"`{tokenizer.path.name}` with {tokenizer.size:,} pieces, {tokenizer.identity}.",
        "",
        f"{len(PROMPTS)} shot descriptions written in Thai, each beside its English. Pieces per "
        "character count every character but spaces; an unknown piece is `<unk>` (one for a "
        "run of characters the vocabulary lacks), an unknown character one it cannot spell at "
        "all; a round trip decodes the pieces back, exactly or up to Unicode NFKC.",
        "",
        "| | prompts | characters | pieces | pieces per character | unknown pieces "
        "| unknown characters | one-character pieces | round trips (exact / NFKC) "
        f"| over {MAX_TOKENS} tokens |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for language, s in totals.items():
        lines.append(
            f"| {language} | {s['prompts']} | {s['characters']:,} | {s['pieces']:,} "
            f"| {s['pieces_per_character']:.2f} | {s['unknown_share']:.2%} "
            f"| {s['unknown_character_share']:.2%} "
            f"| {s['single_character_share']:.0%} "
            f"| {s['exact_round_trips']} / {s['nfkc_round_trips']} | {s['over_limit']} |"
        )
    ratio = totals["Thai"]["pieces"] / totals["English"]["pieces"]
    lines += [
        "",
        f"A Thai prompt takes {ratio:.2f}× the pieces of its English.",
        "",
        "## Each prompt",
        "",
        "| # | Thai pieces | unknown characters | round trip | English pieces "
        "| how the Thai is cut |",
        "|---|---|---|---|---|---|",
    ]
    for number, (th, en) in enumerate(zip(thai, english), start=1):
        trip = "exact" if th.exact_round_trip else "NFKC" if th.nfkc_round_trip else "no"
        lines.append(
            f"| {number} | {len(th.pieces)} | {th.unknown_characters} | {trip} | {len(en.pieces)} "
            f"| {shown(th.pieces)} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--tokenizer",
        type=Path,
        default=weights_dir() / TOKENIZER_FOLDER,
        help="tier 4's tokenizer folder, or its spiece.model or tokenizer.json",
    )
    parser.add_argument("--out", type=Path, default=REPORT, help="the Markdown report to write")
    args = parser.parse_args()
    tokenizer = Tokenizer(args.tokenizer)
    where = f"{platform.machine()}, {platform.node()}"
    text = report(tokenizer, datetime.date.today().isoformat(), where)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
