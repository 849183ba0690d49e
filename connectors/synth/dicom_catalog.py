"""What the synthetic imaging departments have: procedures, scanners and staff.

The procedure codes are LOINC radiology codes with their long common names. Scanner makes
and models are real product names; stations, serial numbers, institutions and staff are made
up. Each site's devices fix how their files are encoded, as real departments do: the older
computed-radiography readers and one CT write implicit VR, the newest MR writes enhanced
multi-frame objects, everything else explicit VR little endian.
"""

import random
from dataclasses import dataclass
from functools import cache
from typing import Literal

from pydicom.uid import UID, ExplicitVRLittleEndian, ImplicitVRLittleEndian

from connectors.synth import demographics as demo

Orientation = Literal["axial", "sagittal", "coronal"]
SeriesKind = Literal["localizer", "slices", "view"]


@dataclass(frozen=True)
class SeriesPlan:
    """One series a procedure acquires.

    Attributes:
        description: SeriesDescription.
        kind: ``localizer`` (one CT scout), ``slices`` (a stack of cross-sections) or
            ``view`` (one projection radiograph).
        images: instances in the series (frames, when written as one multi-frame object).
        orientation: the slice or projection plane.
        thickness: SliceThickness in mm (0 for projections).
        sequence: MR only: (ScanningSequence, SequenceVariant, TR ms, TE ms, TI ms or 0,
            flip angle, echo train length, enhanced-MR acquisition contrast).
        view: radiographs only: ViewPosition (``PA``, ``AP``, ``LL``, ``LAT``).
    """

    description: str
    kind: SeriesKind
    images: int
    orientation: Orientation
    thickness: float = 0.0
    sequence: tuple[str, str, float, float, float, int, int, str] | None = None
    view: str = ""


@dataclass(frozen=True)
class Procedure:
    """An orderable imaging procedure.

    Attributes:
        key: a short name used in code.
        family: the kind of device that performs it: ``CT``, ``MR``, ``XR`` (a radiography
            room) or ``XR_PORTABLE`` (a mobile unit at the bedside).
        code: LOINC code.
        display: LOINC long common name.
        body_part: BodyPartExamined.
        anatomy: SNOMED CT code and meaning of the region imaged.
        fov: field of view in mm (the in-plane extent the pixels cover).
        series: the series acquired, in order.
        contrast: the intravenous contrast agent, or "" for none.
        paired: whether the body part is paired (knee), so the study has a laterality.
        report: a radiologist's report text (findings, impression) for a normal study.
    """

    key: str
    family: Literal["CT", "MR", "XR", "XR_PORTABLE"]
    code: str
    display: str
    body_part: str
    anatomy: tuple[str, str]
    fov: float
    series: tuple[SeriesPlan, ...]
    contrast: str = ""
    paired: bool = False
    report: tuple[str, str] = ("", "")


_T2_AX = ("SE", "SK\\SP\\OSP", 4500.0, 95.0, 0.0, 150, 15, "T2")
_FLAIR_AX = ("SE\\IR", "SK\\SP\\MP\\OSP", 9000.0, 85.0, 2500.0, 150, 17, "FLAIR")
_T1_SAG = ("SE", "SK\\SP\\OSP", 550.0, 10.0, 0.0, 90, 3, "T1")
_PD_FS = ("SE", "SK\\SP\\OSP", 3200.0, 35.0, 0.0, 150, 9, "PROTON_DENSITY")
_T2_SAG = ("SE", "SK\\SP\\OSP", 3500.0, 100.0, 0.0, 150, 17, "T2")

XR_CHEST_2V = Procedure(
    "xr_chest_2v", "XR", "36643-5", "XR Chest 2 Views", "CHEST", ("51185008", "Thorax"), 430.0,
    (
        SeriesPlan("Chest PA", "view", 1, "coronal", view="PA"),
        SeriesPlan("Chest LAT", "view", 1, "sagittal", view="LL"),
    ),
    report=(
        "The lungs are clear. The cardiomediastinal silhouette is within normal limits. "
        "No pleural effusion or pneumothorax.",
        "No acute cardiopulmonary process.",
    ),
)
XR_CHEST_1V = Procedure(
    "xr_chest_1v", "XR_PORTABLE", "36554-4", "XR Chest Single view", "CHEST",
    ("51185008", "Thorax"), 430.0,
    (SeriesPlan("Chest AP portable", "view", 1, "coronal", view="AP"),),
    report=(
        "Single portable AP view. Lungs are clear. Heart size is normal for technique.",
        "No acute cardiopulmonary abnormality.",
    ),
)
XR_KNEE_3V = Procedure(
    "xr_knee_3v", "XR", "30788-4", "XR Knee 3 Views", "KNEE", ("72696002", "Knee"), 240.0,
    (
        SeriesPlan("Knee AP", "view", 1, "coronal", view="AP"),
        SeriesPlan("Knee LAT", "view", 1, "sagittal", view="LAT"),
        SeriesPlan("Knee Sunrise", "view", 1, "axial", view="AP"),
    ),
    paired=True,
    report=(
        "Mild medial joint space narrowing with small marginal osteophytes. "
        "No fracture or joint effusion.",
        "Mild degenerative change.",
    ),
)
CT_HEAD = Procedure(
    "ct_head", "CT", "30799-1", "CT Head WO contrast", "HEAD", ("69536005", "Head"), 240.0,
    (
        SeriesPlan("Topogram 0.6 T20s", "localizer", 1, "coronal"),
        SeriesPlan("Head 5.0 H30s", "slices", 10, "axial", thickness=5.0),
    ),
    report=(
        "No acute intracranial hemorrhage, mass effect or midline shift. "
        "Gray-white matter differentiation is preserved. Ventricles are normal in size.",
        "No acute intracranial abnormality.",
    ),
)
CT_CHEST = Procedure(
    "ct_chest", "CT", "29252-4", "CT Chest WO contrast", "CHEST", ("51185008", "Thorax"),
    360.0,
    (
        SeriesPlan("Topogram 0.6 T20f", "localizer", 1, "coronal"),
        SeriesPlan("Thorax 5.0 B70f", "slices", 10, "axial", thickness=5.0),
    ),
    report=(
        "No focal consolidation, mass or suspicious pulmonary nodule. "
        "No pleural or pericardial effusion. No thoracic lymphadenopathy.",
        "No acute intrathoracic abnormality.",
    ),
)
CT_ABDOMEN_PELVIS = Procedure(
    "ct_abdomen_pelvis", "CT", "36813-4", "CT Abdomen and Pelvis W contrast IV", "ABDOMEN",
    ("818981001", "Abdomen"), 380.0,
    (
        SeriesPlan("Topogram 0.6 T20f", "localizer", 1, "coronal"),
        SeriesPlan("Abdomen 5.0 B30f PV", "slices", 10, "axial", thickness=5.0),
    ),
    contrast="Omnipaque 350",
    report=(
        "Liver, spleen, pancreas and adrenal glands are unremarkable. No hydronephrosis. "
        "The appendix is normal. No free fluid or free air.",
        "No acute abdominopelvic process.",
    ),
)
MR_BRAIN = Procedure(
    "mr_brain", "MR", "30657-1", "MR Brain WO contrast", "HEAD", ("12738006", "Brain"), 230.0,
    (
        SeriesPlan("t2_tse_tra", "slices", 6, "axial", 5.0, _T2_AX),
        SeriesPlan("t2_tirm_tra_dark-fluid", "slices", 6, "axial", 5.0, _FLAIR_AX),
        SeriesPlan("t1_se_sag", "slices", 5, "sagittal", 5.0, _T1_SAG),
    ),
    report=(
        "No acute infarct, hemorrhage or mass. Scattered punctate T2 hyperintensities in "
        "the periventricular white matter. Normal flow voids.",
        "No acute intracranial abnormality. Mild chronic small vessel ischemic change.",
    ),
)
MR_KNEE = Procedure(
    "mr_knee", "MR", "30691-0", "MR Knee WO contrast", "KNEE", ("72696002", "Knee"), 160.0,
    (
        SeriesPlan("pd_tse_fs_sag", "slices", 6, "sagittal", 3.0, _PD_FS),
        SeriesPlan("pd_tse_fs_cor", "slices", 6, "coronal", 3.0, _PD_FS),
    ),
    paired=True,
    report=(
        "Intrasubstance signal in the posterior horn of the medial meniscus without a tear "
        "reaching the articular surface. Cruciate and collateral ligaments are intact.",
        "Medial meniscal degeneration without tear.",
    ),
)
MR_LUMBAR_SPINE = Procedure(
    "mr_lumbar_spine", "MR", "30679-5", "MR Lumbar spine WO contrast", "LSPINE",
    ("122496007", "Lumbar spine"), 300.0,
    (
        SeriesPlan("t2_tse_sag", "slices", 6, "sagittal", 4.0, _T2_SAG),
        SeriesPlan("t1_tse_sag", "slices", 6, "sagittal", 4.0, _T1_SAG),
        SeriesPlan("t2_tse_tra", "slices", 5, "axial", 4.0, _T2_AX),
    ),
    report=(
        "Disc desiccation at L4-L5 and L5-S1 with a small central protrusion at L5-S1. "
        "No spinal canal stenosis. The conus terminates normally.",
        "Mild degenerative disc disease without significant stenosis.",
    ),
)

PROCEDURES: tuple[Procedure, ...] = (
    XR_CHEST_2V, XR_CHEST_1V, XR_KNEE_3V, CT_HEAD, CT_CHEST, CT_ABDOMEN_PELVIS, MR_BRAIN,
    MR_KNEE, MR_LUMBAR_SPINE,
)
"""Every procedure the departments perform."""


@dataclass(frozen=True)
class Device:
    """One scanner, its identity in the headers, and how it encodes its files.

    Attributes:
        modality: Modality of its images (CT, MR, CR, DX).
        manufacturer, model, software: Manufacturer, ManufacturerModelName, SoftwareVersions.
        station: StationName.
        serial: DeviceSerialNumber.
        syntax: the transfer syntax of its files.
        charset: SpecificCharacterSet of its files (``ISO_IR 100`` is Latin-1, ``ISO_IR 192``
            UTF-8).
        field_strength: MR only: MagneticFieldStrength in tesla.
        enhanced: MR only: writes its first series of a study as one Enhanced MR object.
        kernel: CT only: the convolution kernel name style (``siemens``, ``ge``, ...).
    """

    modality: str
    manufacturer: str
    model: str
    software: str
    station: str
    serial: str
    syntax: UID = ExplicitVRLittleEndian
    charset: str = "ISO_IR 100"
    field_strength: float = 0.0
    enhanced: bool = False
    kernel: str = ""


@dataclass(frozen=True)
class Department:
    """A radiology department: where it is and the device used for each procedure family."""

    name: str
    address: str
    devices: dict[str, Device]


_UTF8 = "ISO_IR 192"

DEPARTMENTS: dict[str, Department] = {
    "SITE-A01": Department(
        "Biofed Boston Medical Center",
        "100 Federation Way, Boston, MA 02118",
        {
            "CT": Device("CT", "SIEMENS", "SOMATOM Force", "syngo CT VB20A", "A01CT1", "73412",
                         charset=_UTF8, kernel="siemens"),
            "MR": Device("MR", "SIEMENS", "MAGNETOM Vida", "syngo MR XA20", "A01MR2", "175033",
                         charset=_UTF8, field_strength=3.0, enhanced=True),
            "XR": Device("DX", "Carestream Health", "DRX-Evolution Plus", "5.7.412.3", "A01DR1",
                         "40112", charset=_UTF8),
            "XR_PORTABLE": Device("DX", "Carestream Health", "DRX-Revolution", "5.7.412.3",
                                  "A01PORT1", "61087", charset=_UTF8),
        },
    ),
    "SITE-A02": Department(
        "Biofed Hartford Medical Center",
        "25 Charter Oak Plaza, Hartford, CT 06106",
        {
            "CT": Device("CT", "GE MEDICAL SYSTEMS", "Revolution CT", "revo_ct_22mw.40",
                         "A02CT1", "REV5521", kernel="ge"),
            "MR": Device("MR", "GE MEDICAL SYSTEMS", "SIGNA Premier", "29\\LX\\MR Software",
                         "A02MR1", "000000PREM18", field_strength=3.0),
            "XR": Device("DX", "GE Healthcare", "Discovery XR656", "dm_Platform_release_FW9",
                         "A02XR1", "XR656-2231"),
            "XR_PORTABLE": Device("DX", "GE Healthcare", "Optima XR240amx", "amx_FW3.2",
                                  "A02AMX1", "AMX2-09876"),
        },
    ),
    "SITE-B07": Department(
        "Biofed Denver Medical Center",
        "4500 Aurora Parkway, Denver, CO 80220",
        {
            "CT": Device("CT", "Philips", "iCT 256", "4.1.6", "B07CT1", "100345",
                         kernel="philips"),
            "MR": Device("MR", "Philips Medical Systems", "Ingenia", "5.6.1\\5.6.1.2",
                         "B07MR1", "45821", field_strength=1.5),
            "XR": Device("DX", "Philips Medical Systems", "DigitalDiagnost", "4.3.2",
                         "B07DR1", "12045"),
            "XR_PORTABLE": Device("DX", "Philips Medical Systems", "MobileDiagnost wDR",
                                  "2.2.0", "B07MOB1", "21377"),
        },
    ),
    "SITE-C03": Department(
        "Biofed Houston Medical Center",
        "7700 Bayou Medical Drive, Houston, TX 77030",
        {
            "CT": Device("CT", "TOSHIBA", "Aquilion ONE", "V6.0SP0406", "C03CT1", "5EA1234567",
                         kernel="toshiba"),
            "MR": Device("MR", "SIEMENS", "Avanto", "syngo MR B17", "C03MR1", "26512",
                         field_strength=1.5),
            "XR": Device("CR", "Agfa", "CR 85-X", "VIPS_2.1.0", "C03CR1", "2045",
                         syntax=ImplicitVRLittleEndian),
            "XR_PORTABLE": Device("CR", "Agfa", "CR 85-X", "VIPS_2.1.0", "C03CR2", "2046",
                                  syntax=ImplicitVRLittleEndian),
        },
    ),
    "SITE-D02": Department(
        "Biofed Phoenix Medical Center",
        "1800 Desert Sky Road, Phoenix, AZ 85006",
        {
            "CT": Device("CT", "GE MEDICAL SYSTEMS", "LightSpeed VCT", "07MW18.4", "D02CT1",
                         "VCT00812", syntax=ImplicitVRLittleEndian, kernel="ge"),
            "MR": Device("MR", "GE MEDICAL SYSTEMS", "Optima MR450w", "27\\LX\\MR Software",
                         "D02MR1", "000000OPT450", field_strength=1.5),
            "XR": Device("CR", "FUJIFILM Corporation", "FCR CAPSULA XL II", "A08", "D02CR1",
                         "63310", syntax=ImplicitVRLittleEndian),
            "XR_PORTABLE": Device("DX", "FUJIFILM Corporation", "FDR Go PLUS", "V1.2",
                                  "D02GO1", "58843"),
        },
    ),
}
"""Each site's radiology department."""

OUTSIDE = Department(
    "Riverside Imaging Center",
    "12 Mill Pond Road, Riverside, CA 92501",
    {
        "CT": Device("CT", "SIEMENS", "SOMATOM go.Up", "syngo CT VA30A", "RICCT1", "112044",
                     kernel="siemens"),
        "MR": Device("MR", "SIEMENS", "MAGNETOM Sola", "syngo MR XA31", "RICMR1", "178211",
                     field_strength=1.5),
        "XR": Device("DX", "KONICA MINOLTA", "AeroDR", "1.40", "RICDR1", "AD0914"),
        "XR_PORTABLE": Device("DX", "KONICA MINOLTA", "AeroDR", "1.40", "RICDR1", "AD0914"),
    },
)
"""The outside imaging center whose prior studies patients bring on disc."""

LEGACY = Department(
    "Lakeside Radiology Associates",
    "3 Harbor Street, Lakeside, MI 49116",
    {
        "XR": Device("CR", "KODAK", "CR 850", "5.1", "LRA_CR1", "3310"),
        "XR_PORTABLE": Device("CR", "KODAK", "CR 850", "5.1", "LRA_CR1", "3310"),
    },
)
"""The practice whose old archive was merged into one site's PACS."""


def kernel_name(device: Device, body_part: str) -> str:
    """ConvolutionKernel as the device's vendor names its lung, brain or soft-tissue kernel.

    Args:
        device: a CT scanner.
        body_part: BodyPartExamined of the series (``CHEST`` gets the lung kernel, ``HEAD``
            the brain kernel, anything else the soft-tissue one).

    Returns:
        The kernel name, for instance ``Br40`` or ``STANDARD``.
    """
    lung = body_part == "CHEST"
    brain = body_part == "HEAD"
    names = {
        "siemens": ("Br64", "Hr38", "Br40"),
        "ge": ("LUNG", "STANDARD", "STANDARD"),
        "philips": ("YC", "UB", "B"),
        "toshiba": ("FC52", "FC21", "FC08"),
    }[device.kernel or "siemens"]
    return names[0] if lung else names[1] if brain else names[2]


@dataclass(frozen=True)
class Staff:
    """A department's people as DICOM person names (``Family^Given``)."""

    emergency: tuple[str, ...]
    hospitalists: tuple[str, ...]
    primary_care: tuple[str, ...]
    technologists: tuple[str, ...]
    radiologists: tuple[str, ...]


@cache
def staff(site_code: str) -> Staff:
    """The made-up clinicians of one site: the same whatever the cohort or its seed.

    Args:
        site_code: a site code (``SITE-A01``), or any name for a department outside.

    Returns:
        The site's emergency physicians, hospitalists, primary care physicians,
        technologists and radiologists as DICOM person names.
    """
    rng = random.Random(f"biofed-imaging-staff/{site_code}")
    given = demo.GIVEN_FEMALE + demo.GIVEN_MALE

    def names(count: int) -> tuple[str, ...]:
        return tuple(f"{rng.choice(demo.FAMILY)}^{rng.choice(given)}" for _ in range(count))

    return Staff(names(4), names(4), names(6), names(5), names(3))
